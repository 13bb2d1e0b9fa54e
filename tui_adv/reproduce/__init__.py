"""The reproduction suite: every experiment behind the claims of ``claims.md``, in two profiles.

- ``paper``: full scale (the pylearn2 maxout recipe with early stopping, 1600-unit networks, 5 seeds for
  P08, 12 ensemble members); meant for a GPU.
- ``quick``: the same experiments at a scale that finishes on a 2-core CPU in about 20 minutes.

A step is either a training run (a config from ``configs/`` plus the profile's overrides) or an
analysis of earlier runs (transfer, ensemble, rubbish class, logit curve, weight images, a re-sweep with
predicted labels). Every step is a catalog run: ``experiment`` = the step key, ``profile`` = the profile,
analysis runs point to their parents. A finished step whose config is identical is reused unless
``fresh``.

The package: :mod:`.steps` (what each profile runs, run identity), :mod:`.analyses` (computing an
analysis step) and :mod:`.orchestrator` (the :class:`Reproducer` loop and the catalog look-ups it reuses
runs by). Every name is importable from ``tui_adv.reproduce``.
"""

from __future__ import annotations

from ..choices import PROFILES  # re-exported (claims reads it here)
from .analyses import run_analysis
from .orchestrator import Emit, Reproducer, datasets_needed, find_completed, find_resumable, stack_groups
from .steps import (
    Step,
    _steps,
    analysis_config_json,
    identity,
    seeds,
    step_config,
    step_reads,
    suite,
)

__all__ = [
    "PROFILES", "Emit", "Reproducer", "Step", "analysis_config_json", "datasets_needed", "find_completed",
    "find_resumable", "identity", "run_analysis", "seeds", "stack_groups", "step_config", "step_reads", "suite",
]
