"""Experiment configs: TOML files validated into pydantic models, with errors that name the key.

A config describes one run end to end: the data, the model, how it is trained and the FGSM sweep that
follows. ``--set a.b=value`` overrides any key (the value is read as TOML: ``3``, ``0.5``, ``[0, .1]``,
``true``, ``"text"``; a bare word is taken as a string). ``schema``: the models; ``load``: reading them.
"""

from __future__ import annotations

from .load import (
    MAX_PROBLEMS,
    apply_overrides,
    config_dir,
    config_from_json,
    dataset_of,
    format_validation_error,
    load_config,
    parse_value,
    resolve_config_path,
    shipped_config_dirs,
    validate,
)
from .schema import (
    Continuation,
    DataConfig,
    EarlyStopping,
    ModelConfig,
    Reading,
    RunConfig,
    SweepConfig,
    SweepVariant,
    TrainConfig,
)

__all__ = [
    "dataset_of",
    "MAX_PROBLEMS", "Continuation", "DataConfig", "EarlyStopping", "ModelConfig", "Reading", "RunConfig", "SweepConfig", "SweepVariant",
    "TrainConfig", "apply_overrides", "config_dir", "config_from_json", "format_validation_error", "load_config", "parse_value", "resolve_config_path", "shipped_config_dirs", "validate",
]
