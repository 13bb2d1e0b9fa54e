"""The order a suite's steps start in (``reproduce --order``).

``suite`` (the default) starts them in the suite's order: claim by claim, as ``claims.md`` lists them.
``shortest`` starts the steps with the least work first, so that a run cut short (a time budget, a
device lent for minutes, a Ctrl-C) has finished as many claims as it could: in the paper profile the
1600-unit networks (P07 to P12, most of its work) would otherwise hold every worker from the 10th step
on, and the cheap steps after them (the ensemble, the CNN, the seed report's) would never start; with
it, every step that does not read them starts before them. Either
way a step starts only when every step it reads has finished, and the whole suite does the same work.

A step's work is counted, not measured (nothing runs, no data is read): the forward FLOPs of its model
on one image (``torch.utils.flop_counter``: matrix products and convolutions), times the passes of its
training mode, the training images and the per-epoch evaluation, times its most epochs (the
continuation's bound included). An analysis ranks just after the costliest step it reads (it starts
as soon as its parents are done, and finishes a claim); the members of a stack (``--stack``) rank as the
stack, the sum of their work, since they run as one step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RunConfig
    from .steps import Step

ORDERS = ("suite", "shortest")

# forward passes' worth of one training image's step, per mode (a backward ≈ two forwards)
_PASSES = {"clean": 3.0, "l1": 3.0, "analytic": 3.0, "augment": 3.5, "adversarial": 6.0, "sign_noise": 6.0, "uniform_noise": 6.0}
_EVAL_PASSES = 4.0  # the per-epoch evaluation: a clean forward, an FGSM direction (2) and its forward


def model_forward_flops(cfg: RunConfig) -> float:
    """FLOPs of one forward pass of ``cfg``'s model on one image: its matrix products and convolutions,
    counted by ``torch.utils.flop_counter`` on a CPU forward of one zero image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..checkpoints import model_for
    from ..core.datasets import dataset_spec

    model = model_for(cfg).eval()
    shape = dataset_spec(cfg.data.dataset).shape
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return float(counter.get_total_flops())


def _images(cfg: RunConfig) -> tuple[int, int]:
    """(training images, images evaluated per epoch), from the config alone (a 2-class pair: a fifth)."""
    from ..core.data import valid_size
    from ..core.datasets import dataset_spec

    d = cfg.data
    total = dataset_spec(d.dataset).n_train
    train = total - valid_size(total) if d.validation else total
    if d.pair:
        train //= 5
    if d.train_limit is not None:
        train = min(train, d.train_limit)
    evaluated = cfg.train.eval_limit or 10_000
    return train, evaluated


def step_work(steps: list[Step], profile: str) -> dict[str, float]:
    """Step key -> its counted work in FLOPs (0 for an analysis: it does little beside a training)."""
    from .steps import step_config

    by_key = {s.key: s for s in steps}
    flops: dict[str, float] = {}  # per model config, counted once
    out: dict[str, float] = {}
    for s in steps:
        if not (s.config or s.retrain_of):
            out[s.key] = 0.0
            continue
        base = by_key.get(s.retrain_of, s) if s.retrain_of else s
        cfg = step_config(base, profile)
        model_key = cfg.model.model_dump_json() + cfg.data.dataset
        if model_key not in flops:
            flops[model_key] = model_forward_flops(cfg)
        train, evaluated = _images(cfg)
        epochs = cfg.train.epochs + (cfg.train.continuation.max_epochs if cfg.train.continuation and not s.retrain_of else 0)
        out[s.key] = flops[model_key] * epochs * (_PASSES.get(cfg.train.mode, 6.0) * train + _EVAL_PASSES * evaluated)
    return out


def ordered(steps: list[Step], profile: str, order: str, groups: dict[str, list[str]] | None = None) -> list[Step]:
    """``steps`` in the order they should start (``order``: one of :data:`ORDERS`); ``groups``: the
    stacks (:func:`~tui_adv.reproduce.orchestrator.stack_groups`), each ranked by its members' sum."""
    if order == "suite":
        return list(steps)
    if order != "shortest":
        raise ValueError(f"unknown order {order!r}; one of {', '.join(ORDERS)}")
    work = step_work(steps, profile)
    rank = {k: sum(work[m] for m in (groups or {}).get(k, [k]) if m in work) for k in work}
    for s in steps:  # the suite lists parents first: an analysis of an analysis ranks after both
        if s.analysis:
            rank[s.key] = max((rank[p] for p in s.needs if p in rank), default=0.0)
    return sorted(steps, key=lambda s: rank[s.key])  # stable: a tie keeps the suite's order (parents first)
