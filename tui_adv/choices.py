"""The fixed vocabularies every layer shares: run statuses, suite profiles, devices, export formats.

Each is a ``StrEnum``: a member *is* its string (``RunStatus.COMPLETED == "completed"``, JSON and the
catalog store the same text as before), so stored values and printed output stay identical while the
names are spelled out once, here. No imports beyond the standard library: the CLI builds its option
choices from these before anything heavy is loaded.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


STATUSES: tuple[RunStatus, ...] = tuple(RunStatus)
ACTIVE: tuple[RunStatus, ...] = (RunStatus.QUEUED, RunStatus.RUNNING)  # a process owns the row
RESUMABLE: tuple[RunStatus, ...] = (RunStatus.INTERRUPTED, RunStatus.CANCELLED, RunStatus.FAILED)
FINISHED: tuple[RunStatus, ...] = tuple(s for s in RunStatus if s not in ACTIVE)


class Profile(StrEnum):
    """The reproduction suite's sizes (``tui_adv/reproduce/steps.py::_steps``)."""

    QUICK = "quick"
    STANDARD = "standard"
    PAPER = "paper"


PROFILES: tuple[str, ...] = tuple(p.value for p in Profile)


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Order(StrEnum):
    """The order a suite's steps start in (``reproduce --order``; :mod:`tui_adv.reproduce.order`)."""

    SUITE = "suite"
    SHORTEST = "shortest"


class ExecutorKind(StrEnum):
    """Where runs execute: local processes (the default) or tasks on a Ray cluster."""

    LOCAL = "local"
    RAY = "ray"


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class Dataset(StrEnum):
    """``data.dataset``: the datasets the loader knows (``tui_adv/core/data.py::DATASETS``)."""

    MNIST = "mnist"
    FASHION_MNIST = "fashion_mnist"
    KMNIST = "kmnist"
    CIFAR10 = "cifar10"
