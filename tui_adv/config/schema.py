"""The config schema: pydantic models of a run (data, model, training, the FGSM sweep and its readings),
strict (unknown keys and wrong types are errors), with the defaults every reader shares."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NonNeg = Annotated[float, Field(ge=0)]
Prob = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    # strict: a value of the wrong type is an error, never coerced (train.epochs = true is not 1,
    # pair = ["3", "7"] is not [3, 7], "0.1" is not 0.1; an integer is still a valid float);
    # no inf/nan anywhere (train.lr = inf would train nothing and fail with the wrong advice)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)


Count = Annotated[int, Field(gt=0, le=1_000_000_000)]  # example counts, batch sizes: bounded, so no overflow later


DatasetName = Literal["mnist", "fashion_mnist", "kmnist", "cifar10"]


class DataConfig(_Strict):
    dataset: DatasetName = "mnist"
    """Which dataset, from the data root in torchvision's layout (``MNIST/raw``, ``FashionMNIST/raw``,
    ``KMNIST/raw``, ``cifar-10-batches-py``). The paper's claims are MNIST's: a run on another dataset
    never fills one (its config differs), but for the CIFAR-10 claim, which its own config fills."""
    pair: tuple[int, int] | None = None
    """Keep two digits only (binary task), relabelled 0 and 1, e.g. [3, 7] as in the paper."""
    validation: bool = False
    """Hold out the last 10k of the 60k training images as validation (the paper's 50k/10k split)."""
    train_limit: Count | None = None
    test_limit: Count | None = None

    @field_validator("pair", mode="before")
    @classmethod
    def _pair_list(cls, v):
        # TOML and JSON have arrays, not tuples: [3, 7] is the way to write it (its items stay strict)
        return tuple(v) if isinstance(v, list) else v

    @field_validator("pair")
    @classmethod
    def _pair(cls, v):
        if v is not None and (v[0] == v[1] or not all(0 <= d <= 9 for d in v)):
            raise ValueError("must be two different digits 0-9")
        return v


class ModelConfig(_Strict):
    kind: Literal["softmax", "logistic", "maxout", "rbf", "inception", "conv_maxout"]
    # maxout
    units: Annotated[int, Field(gt=0, le=100_000)] | None = None
    pieces: Annotated[int, Field(gt=0, le=1000)] | None = None
    layers: Annotated[int, Field(gt=0, le=8)] | None = None
    input_dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    hidden_dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    init_range: Annotated[float, Field(gt=0)] | None = None
    max_col_norm: Annotated[float, Field(gt=0)] | None = None
    input_dropout_rescale: bool | None = None
    """maxout: scale the kept pixels by 1/(1 − input_dropout) as ``nn.Dropout`` does. The recipe does
    not (``input_scales: 1``): false, the default."""
    output: Literal["softmax", "sigmoid"] | None = None
    """maxout: a softmax output layer (the recipe) or independent sigmoid units trained one-vs-rest (P19)."""
    # rbf
    init_beta: Annotated[float, Field(gt=0)] | None = None
    # inception
    width: Annotated[int, Field(gt=0, le=8)] | None = None
    # conv_maxout (CIFAR-10)
    scale: Annotated[float, Field(gt=0, le=4)] | None = None
    """conv_maxout: multiplies every layer's channel and unit count (1, the default, is the paper's
    network; a small value makes a tiny network for tests)."""
    conv_lr_scale: Annotated[float, Field(gt=0, le=1)] | None = None
    """conv_maxout: the learning-rate scale of the convolutional layers (the recipe's ``W_lr_scale`` and
    ``b_lr_scale``, .05, the default)."""

    @model_validator(mode="after")
    def _knobs_match_kind(self):
        allowed = {
            "softmax": set(),
            "logistic": set(),
            "maxout": {"units", "pieces", "layers", "input_dropout", "hidden_dropout", "init_range", "max_col_norm", "input_dropout_rescale", "output"},
            "rbf": {"init_beta"},
            "inception": {"width"},
            "conv_maxout": {"input_dropout", "hidden_dropout", "init_range", "input_dropout_rescale", "scale", "conv_lr_scale"},
        }[self.kind]
        given = {k for k in self.model_fields_set if k != "kind" and getattr(self, k) is not None}
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"{', '.join(extra)} do(es) not apply to model kind {self.kind!r}")
        return self

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if k != "kind" and v is not None}


class EarlyStopping(_Strict):
    """Stop after ``patience`` epochs without a *strict* improvement of ``metric`` on the validation
    split, then keep the best epoch's parameters (pylearn2's MonitorBased criterion with
    prop_decrease = 0, and MonitorBasedSaveBest)."""

    metric: Literal["valid_error", "valid_adv_error"] = "valid_error"
    patience: Annotated[int, Field(gt=0, le=100_000)] = 10


class Continuation(_Strict):
    """pylearn2's ``mnist_pi_continued.yaml``, after early stopping: continue from the best parameters on
    all training images (train + validation) with the learning rate and momentum they had (lr still
    decaying, momentum fixed, a fresh velocity), until the training objective on the validation images
    falls to the training objective the best epoch had on the training images (MatchChannel)."""

    max_epochs: Annotated[int, Field(gt=0, le=100_000)] = 200
    """A bound on the continuation, in case the objectives never meet."""


TrainMode = Literal["clean", "adversarial", "analytic", "l1", "sign_noise", "uniform_noise", "augment"]


class TrainConfig(_Strict):
    epochs: Annotated[int, Field(ge=0, le=100_000)] = 10
    batch_size: Count = 100
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: Annotated[float, Field(gt=0)] = 0.1
    lr_decay: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Learning rate multiplied by this after every step (pylearn2: 1/1.000004)."""
    min_lr: NonNeg = 1e-6
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.5
    final_momentum: Annotated[float, Field(ge=0, lt=1)] | None = None
    """Momentum rises linearly from ``momentum`` to this between epoch 1 and ``momentum_saturate``."""
    momentum_saturate: Count = 250
    weight_decay: NonNeg = 0.0
    mode: TrainMode = "clean"
    alpha: Prob = 0.5
    """Weight of the clean loss: J̃ = αJ(x) + (1−α)J(x_adv) (adversarial, analytic, noise modes)."""
    epsilon: NonNeg = 0.25
    """ε of the adversarial/noise examples during training."""
    clip: bool = True
    """Clamp the training-time adversarial, noise and augmentation examples (and the per-epoch adversarial
    validation) to [0, 1]. The paper never mentions clipping; false trains on x + ε·sign(∇) as written."""
    analytic_form: Literal["worst_case", "seed"] = "worst_case"
    """mode = "analytic", logistic model: ``worst_case`` = ζ(ε‖w‖₁ − y(wᵀx+b)), the true worst case for
    both labels; ``seed`` = the seed report's written form ζ(−y(wᵀx+b − ε‖w‖₁)), worst case for y = +1
    but the *best* case for y = −1 (kept to reproduce and explain S05)."""
    l1: NonNeg = 0.0025
    """L1 coefficient on the first layer's weights (mode = "l1", P05)."""
    augment_ratio: Annotated[float, Field(gt=0, le=10)] = 1.0
    """mode = "augment": FGSM examples added per clean training example (1.0 = 1:1, as in the seed)."""
    augment_after: Annotated[int, Field(ge=0)] | None = None
    """mode = "augment": clean epochs before the FGSM examples are added (default: half the epochs)."""
    early_stopping: EarlyStopping | None = None
    continuation: Continuation | None = None
    """After early stopping, continue on all training images until the objectives match (the recipe's
    second stage; needs early_stopping)."""
    matrix_every: Annotated[int, Field(ge=0)] = 0
    """Every N epochs (0: never), measure the FGSM protocol matrix on the test split at ε = .25 (gradient
    eval/dropout × clip on/off: error and confidence on mistakes) and record it as metrics
    ``matrix_error[READING]`` / ``matrix_conf[READING]``, so the dashboard plots how each reading moves."""
    eval_adv: bool = True
    """Also measure FGSM error (at ``epsilon``) on the validation/test split after every epoch."""
    eval_limit: Count | None = None
    """Evaluate per-epoch metrics on the first N examples only (speed); final sweeps use all."""
    checkpoint_every: Annotated[int, Field(ge=0)] = 1
    """Write a checkpoint every N epochs (0: only at the end), or less often as ``$ADV_TUI_CHECKPOINT_S``
    says (about every 30 s on a GPU); the last epoch's and early stopping's are always written."""

    @model_validator(mode="after")
    def _augment_after(self):
        if self.augment_after is not None and self.augment_after > self.epochs:
            raise ValueError("augment_after cannot exceed epochs")
        return self


Gradient = Literal["eval", "dropout"]
Cost = Literal["train", "true_class"]
Labels = Literal["true", "predicted"]
Masks = Annotated[int, Field(gt=0, le=100)]


class Reading(BaseModel):
    """One reading of the attack: the choices the paper leaves unstated (see core/attacks.py)."""

    model_config = ConfigDict(frozen=True)
    labels: str = "true"
    gradient: str = "eval"
    clip: bool = True
    cost: str = "train"
    masks: int = 1

    @property
    def key(self) -> tuple:
        return (self.labels, self.gradient, self.clip, self.cost)

    @property
    def name(self) -> str:
        """e.g. "eval+clip", "dropout+noclip", "eval+clip+true_class" (predicted labels: a "pred:" prefix)."""
        s = f"{self.gradient}+{'clip' if self.clip else 'noclip'}" + ("" if self.cost == "train" else f"+{self.cost}")
        return s if self.labels == "true" else f"pred:{s}"


class SweepVariant(_Strict):
    """An extra sweep of the same run with other attack choices; a field left out is the sweep's own."""

    labels: Labels | None = None
    gradient: Gradient | None = None
    clip: bool | None = None
    cost: Cost | None = None
    masks: Masks | None = None


class SweepConfig(_Strict):
    enabled: bool = True
    epsilons: list[NonNeg] = Field(default_factory=lambda: [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3])
    labels: Labels = "true"
    gradient: Gradient = "eval"
    """eval: the deterministic model's gradient (the standard attack contract); dropout: the gradient of
    the training cost through freshly sampled dropout masks (pylearn2's Dropout cost)."""
    clip: bool = True
    """Clamp the adversarial images to [0, 1] (the paper never says; its Fig. 4 is unclipped)."""
    cost: Cost = "train"
    """The cost whose gradient is followed: the head's training loss, or −log p_y of the true class
    (differs for the RBF's one-vs-rest loss, P15)."""
    masks: Masks = 1
    """gradient = dropout: independent mask draws, each its own sweep, reported as mean ± spread."""
    variants: list[SweepVariant] = Field(default_factory=list)
    """More sweeps of the same model with other choices, e.g. ``[[sweep.variants]] gradient = "dropout"``."""
    matrix: bool = False
    """Add every reading of the protocol matrix for this model: gradient eval/dropout (models with dropout)
    × clip on/off × cost train/true_class (one-vs-rest heads), dropout readings with ``matrix_masks`` draws."""
    matrix_masks: Masks = 3
    batch_size: Count = 1000
    samples: Annotated[int, Field(ge=0, le=1000)] = 8
    """How many test images to store as perturbation views (the first N of the test split)."""
    sample_epsilons: list[NonNeg] = Field(default_factory=lambda: [0.1, 0.25])

    @field_validator("epsilons", "sample_epsilons")
    @classmethod
    def _finite(cls, v: list[float]):
        if any(not math.isfinite(e) for e in v):
            raise ValueError("must be finite numbers")
        return v

    @field_validator("epsilons")
    @classmethod
    def _non_empty(cls, v: list[float]):
        if not v:
            raise ValueError("needs at least one epsilon")
        return v


class RunConfig(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    claims: list[str] = Field(default_factory=list)
    experiment: Annotated[str, Field(min_length=1, max_length=200)] = "custom"
    seed: Annotated[int, Field(ge=0, lt=2**63 - 1)] = 0
    """Any whole number from 0 to 2^63 − 2 (the catalog stores 64-bit integers; the noise generator
    is seeded with seed + 1)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    profile: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)

    @field_validator("name", "experiment", "profile", "claims")
    @classmethod
    def _no_control_characters(cls, v):
        for text in v if isinstance(v, list) else [v]:
            if text is not None and any(not ch.isprintable() and ch != " " for ch in text):
                raise ValueError("must not contain control characters (newlines, tabs, escape sequences)")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.data.dataset == "cifar10" and self.model.kind != "conv_maxout":
            raise ValueError(f"data.dataset = 'cifar10' (32×32 colour images) needs model.kind = 'conv_maxout'; {self.model.kind!r} takes 28×28 grey images")
        if self.model.kind == "conv_maxout" and self.data.dataset != "cifar10":
            raise ValueError("model.kind = 'conv_maxout' is the paper's CIFAR-10 network: it needs data.dataset = 'cifar10'")
        if self.model.kind == "logistic" and self.data.pair is None:
            raise ValueError("model.kind = 'logistic' needs data.pair (a binary task), e.g. pair = [3, 7]")
        if self.train.mode == "analytic" and self.model.kind not in ("logistic", "softmax"):
            raise ValueError("train.mode = 'analytic' needs a linear model (logistic or softmax)")
        if self.train.early_stopping and not self.data.validation:
            raise ValueError("train.early_stopping needs data.validation = true")
        if self.train.continuation and not self.train.early_stopping:
            raise ValueError("train.continuation continues after early stopping: it needs train.early_stopping")
        if self.train.continuation and self.train.mode == "augment":
            raise ValueError("train.continuation does not apply to train.mode = 'augment'")
        return self

    @property
    def has_dropout(self) -> bool:
        m = self.model
        if m.kind == "conv_maxout":
            return (m.input_dropout if m.input_dropout is not None else 0.2) > 0 or (m.hidden_dropout if m.hidden_dropout is not None else 0.5) > 0
        return m.kind == "maxout" and ((m.input_dropout if m.input_dropout is not None else 0.2) > 0 or (m.hidden_dropout if m.hidden_dropout is not None else 0.5) > 0)

    @property
    def one_vs_rest(self) -> bool:
        return self.model.kind == "rbf" or (self.model.kind == "maxout" and self.model.output == "sigmoid")

    def readings(self) -> list[Reading]:
        """The sweep's readings, its own first, then its variants and (``matrix``) the protocol matrix,
        without repeats. A dropout-gradient reading of a model without dropout is the eval reading, so it
        is not added by the matrix."""
        sw = self.sweep
        own = Reading(labels=sw.labels, gradient=sw.gradient, clip=sw.clip, cost=sw.cost, masks=sw.masks if sw.gradient == "dropout" else 1)
        out = [own]
        for v in sw.variants:
            g = v.gradient or sw.gradient
            out.append(Reading(labels=v.labels or sw.labels, gradient=g, clip=sw.clip if v.clip is None else v.clip, cost=v.cost or sw.cost,
                               masks=(v.masks or sw.masks) if g == "dropout" else 1))
        if sw.matrix:
            for g in (["eval", "dropout"] if self.has_dropout else ["eval"]):
                for clip in (True, False):
                    for cost in (["train", "true_class"] if self.one_vs_rest else ["train"]):
                        out.append(Reading(labels=sw.labels, gradient=g, clip=clip, cost=cost, masks=sw.matrix_masks if g == "dropout" else 1))
        seen, unique = set(), []
        for r in out:
            if r.key not in seen:
                seen.add(r.key)
                unique.append(r)
        return unique

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)
