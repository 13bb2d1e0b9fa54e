"""What :class:`~tui_adv.core.train.Trainer` measures besides training: the per-epoch evaluation (clean
and FGSM error on the validation or test split), the training objective of a split as the step computes
it (the recipe's continuation compares these), and the FGSM protocol matrix every ``matrix_every`` epochs.
A mixin: it reads the trainer's model, config, data, seed and device.
"""

from __future__ import annotations

import torch

from ..config import Reading
from .attacks import fgsm_direction, mask_generator, perturb, perturb_sign
from .data import Split
from .heads import analytic_loss, head_loss
from .models import MaskDropout
from .sweep import evaluate, predict

MATRIX_EPS = 0.25  # the ε of the paper's FGSM numbers (P02, P09, P13, P14)


class TrainerMetrics:
    def _batch_objective(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training objective of one batch as the training step computes it (dropout masks sampled),
        without touching any parameter gradient: the value pylearn2 monitors as ``*_objective``."""
        cfg, model, head, a = self.cfg, self.model, self.model.head, self.cfg.alpha
        mode = cfg.mode
        if mode == "adversarial":
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                clean = head_loss(head, model(xg), y)
                (g,) = torch.autograd.grad(clean, xg)
            with torch.no_grad():
                return a * clean.detach() + (1 - a) * head_loss(head, model(perturb(x, g.sign(), cfg.epsilon, cfg.clip)), y)
        with torch.no_grad():
            logits = model(x)
            loss = head_loss(head, logits, y)
            if mode == "l1":
                return loss + cfg.l1 * model.first_layer_weight().abs().sum()
            if mode == "analytic":
                return a * loss + (1 - a) * analytic_loss(model, x, y, cfg.epsilon, cfg.analytic_form)
            if mode in ("sign_noise", "uniform_noise"):
                return a * loss + (1 - a) * head_loss(head, model(self._noise(x)), y)
            return loss

    def _objective(self, split: Split) -> float:
        flags = [(m, m.training) for m in self.model.modules()]
        self.model.train()
        total, n = 0.0, len(split)
        try:
            for s in range(0, n, 1000):
                xb, yb = split.x[s : s + 1000], split.y[s : s + 1000]
                total += float(self._batch_objective(xb, yb)) * len(yb)
        finally:
            for m, t in flags:
                m.training = t
        return total / max(n, 1)

    def _matrix(self, epoch: int) -> dict[str, float]:
        """The FGSM protocol matrix on the test split at ε = .25: gradient eval/dropout × clip on/off."""
        x, y = self.data.test.x, self.data.test.y
        has_masks = any(isinstance(m, MaskDropout) and m.p > 0 for m in self.model.modules())
        out: dict[str, float] = {}
        for g in ("eval", "dropout") if has_masks else ("eval",):
            gen = mask_generator(self.seed, 100_000 + epoch, x.device) if g == "dropout" else None
            d = fgsm_direction(self.model, x, y, batch_size=1000, gradient=g, generator=gen)
            for clip in (True, False):
                pred, conf = predict(self.model, perturb(x, d, MATRIX_EPS, clip), batch_size=1000)
                wrong = pred != y
                name = Reading(gradient=g, clip=clip).name
                out[f"matrix_error[{name}]"] = float(wrong.double().mean())
                if int(wrong.sum()):
                    out[f"matrix_conf[{name}]"] = float(conf[wrong].double().mean())
        return out

    def _evaluate(self) -> dict[str, float]:
        return epoch_evaluation(self.model, self.data, self.cfg)


def epoch_evaluation(model: torch.nn.Module, data, cfg) -> dict[str, float]:  # noqa: ANN001
    """A trained model's per-epoch metrics: clean error (and with ``train.eval_adv`` the FGSM error at
    ``train.epsilon``) on the validation split, else the test split, limited to ``train.eval_limit``;
    ``valid_*`` or ``test_*``. Deterministic (eval mode): on a GPU the whole split in one batch (a few
    launches instead of a few per thousand images), on a CPU in thousands (the results are the same up to
    the GEMM's summation order). The solo trainer and each member of a stack measure with it."""
    split = data.valid if data.valid is not None else data.test
    name = "valid" if data.valid is not None else "test"
    split = split.limit(cfg.eval_limit)
    bs = None if split.x.device.type == "cuda" else 1000
    out = {f"{name}_error": evaluate(model, split.x, split.y, batch_size=bs).error}
    if cfg.eval_adv:
        direction = fgsm_direction(model, split.x, split.y, batch_size=bs)
        pred, _ = predict(model, perturb_sign(split.x, direction, cfg.epsilon, cfg.clip), batch_size=bs)
        out[f"{name}_adv_error"] = float((pred != split.y).double().mean())
    return out
