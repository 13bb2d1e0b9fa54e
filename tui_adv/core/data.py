"""The datasets (MNIST, Fashion-MNIST, KMNIST, CIFAR-10) as whole-split tensors on the run's device.

The files are found, md5-checked and unpacked by :mod:`tui_adv.core.datasets` (the registry, the data
root and its layout); this module reads the prepared root through torchvision's own dataset classes,
checks the splits' shapes and labels, and returns them as :class:`Split` tensors (the paper's 50k/10k
validation split, a class pair, limits) in :class:`MNISTData`. The registry's names are importable
from here too. A missing or corrupt file is one :class:`UserError` line naming the directory and the
files expected there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import UserError
from .datasets import _IDX_NAMES as _IDX_NAMES
from .datasets import DATASET_NAMES as DATASET_NAMES
from .datasets import DATASETS as DATASETS
from .datasets import ENV_DATA as ENV_DATA
from .datasets import DatasetSpec as DatasetSpec
from .datasets import _cifar_class, _fix_hint, _prepare_cifar, _prepare_idx
from .datasets import _prepare_raw as _prepare_raw
from .datasets import cache_dir as cache_dir
from .datasets import dataset_spec as dataset_spec
from .datasets import expected_files as expected_files
from .datasets import prepare as prepare
from .datasets import resolve_data_root as resolve_data_root

VALID_SIZE = 10_000  # the paper's split: the last 10k training images validate (MNIST: 50k/10k)

# kept for callers that know MNIST only
MNIST_FILES = DATASETS["mnist"].files
TRAIN_SIZE = 50_000


def _stamp(root: Path, spec: DatasetSpec) -> tuple:
    """(size, mtime) of every file the dataset may be read from: a file replaced since the last load is
    checked and read again, not served from the in-process cache."""
    names = [n for n, _ in spec.files] + [n[:-3] for n, _ in spec.files if n.endswith(".gz")]
    paths = [root / spec.folder / n for n in names] + ([root / spec.archive[0]] if spec.archive else [])
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def _load_uint8(root: str, spec: DatasetSpec | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels): images uint8 (N, C, H, W)."""
    spec = spec or DATASETS["mnist"]
    return _load_uint8_cached(root, spec, _stamp(Path(root), spec))


@lru_cache(maxsize=4)
def _load_uint8_cached(root: str, spec: DatasetSpec, stamp: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    prepared = _prepare_cifar(Path(root), spec) if spec.kind == "cifar" else _prepare_idx(Path(root), spec)
    try:
        if spec.kind == "cifar":
            cls = _cifar_class(spec)
            tr, te = cls(str(prepared), train=True, download=False), cls(str(prepared), train=False, download=False)
            xtr, xte = (torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous() for d in (tr, te))
            ytr, yte = (torch.tensor(d.targets, dtype=torch.long) for d in (tr, te))
        else:
            cls = getattr(tvd, spec.torchvision)
            tr, te = cls(str(prepared), train=True, download=False), cls(str(prepared), train=False, download=False)
            xtr, xte = tr.data.unsqueeze(1), te.data.unsqueeze(1)
            ytr, yte = tr.targets, te.targets
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a file torchvision cannot parse
        raise UserError(f"cannot read {spec.title} from {prepared / spec.folder}: {type(e).__name__}: {e}; {_fix_hint(Path(root), spec)}") from None
    c, h, w = spec.shape
    for x, y, n, split in ((xtr, ytr, spec.n_train, "training"), (xte, yte, spec.n_test, "test")):
        if tuple(x.shape) != (n, c, h, w) or tuple(y.shape) != (n,) or (n and not 0 <= int(y.min()) <= int(y.max()) < len(spec.class_names)):
            raise UserError(f"{spec.title} in {prepared / spec.folder} has a {split} split of shape {tuple(x.shape)} with {tuple(y.shape)} labels, "
                            f"expected ({n}, {c}, {h}, {w}) with labels 0-{len(spec.class_names) - 1}; {_fix_hint(Path(root), spec)}")
    return xtr, ytr.long(), xte, yte.long()


@dataclass
class Split:
    """A dataset split as tensors: ``x`` (N,C,H,W) float in [0,1] ((N,1,28,28) for the MNIST family),
    ``y`` (N,) int64 class labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))

    def limit(self, n: int | None) -> "Split":
        return self if n is None or n >= len(self) else Split(self.x[:n], self.y[:n])


def _to_split(images: torch.Tensor, labels: torch.Tensor, device: torch.device | str) -> Split:
    x = images.to(device=device).to(torch.float32).div_(255.0)
    return Split(x, labels.to(device=device, dtype=torch.long))


@dataclass
class MNISTData:
    """The splits one run uses (any dataset; the name is MNIST's, which came first). ``train``/``valid``
    follow the paper's 50k/10k split when requested."""

    train: Split
    test: Split
    valid: Split | None
    classes: tuple[int, ...]
    dataset: str = "mnist"


Data = MNISTData


def valid_size(n_train: int) -> int:
    """The last 10k training images validate; a small set (a test fixture) holds out its last sixth."""
    return VALID_SIZE if n_train >= 6 * VALID_SIZE else n_train // 6


def load_dataset(
    name: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    *,
    pair: tuple[int, int] | None = None,
    validation: bool = False,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> MNISTData:
    """Load a dataset (whole splits, float in [0,1], on ``device``).

    ``pair=(a, b)`` keeps only classes a and b, relabelled 0 (a) and 1 (b). ``validation=True`` holds out
    the last 10k of the training images (after the pair filter: those of the last 10k) as validation.
    Limits are applied after the split, keeping the first examples.
    """
    spec = dataset_spec(name)
    root = resolve_data_root(data_dir)
    xtr, ytr, xte, yte = _load_uint8(str(root), spec)
    train_size = len(ytr) - valid_size(len(ytr))
    classes: tuple[int, ...] = tuple(range(len(spec.class_names)))
    if pair is not None:
        a, b = pair
        if a == b or not (0 <= a <= 9 and 0 <= b <= 9):
            raise UserError(f"data.pair must be two different digits 0-9, got {list(pair)}")
        mtr = (ytr == a) | (ytr == b)
        mte = (yte == a) | (yte == b)
        # split boundary in the original index space, so validation is still "the last 10k images"
        is_train_part = torch.arange(len(ytr)) < train_size
        valid_mask = mtr & ~is_train_part
        train_mask = mtr & is_train_part if validation else mtr
        xv, yv = xtr[valid_mask], (ytr[valid_mask] == b).long()
        xtr, ytr = xtr[train_mask], (ytr[train_mask] == b).long()
        xte, yte = xte[mte], (yte[mte] == b).long()
        classes = (a, b)
    else:
        xv, yv = xtr[train_size:], ytr[train_size:]
        if validation:
            xtr, ytr = xtr[:train_size], ytr[:train_size]
    # limited before the float conversion (the same first examples, without a float copy of the rest)
    train = _to_split(xtr[:train_limit], ytr[:train_limit], device)
    test = _to_split(xte[:test_limit], yte[:test_limit], device)
    valid = _to_split(xv[:test_limit], yv[:test_limit], device) if validation else None
    return MNISTData(train=train, test=test, valid=valid, classes=classes, dataset=spec.name)


def load_mnist(data_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu", **options) -> MNISTData:  # noqa: ANN003
    """MNIST: :func:`load_dataset` with ``name="mnist"`` (the same keyword options)."""
    return load_dataset("mnist", data_dir, device, **options)


def check_dataset(name: str, data_dir: str | os.PathLike | None = None) -> dict:
    """Check a root for one dataset (files, checksums, shapes) without loading it onto a device; returns
    what was found (for ``adv-tui data``). Raises :class:`UserError` (one line) when it cannot be used."""
    spec = dataset_spec(name)
    root = resolve_data_root(data_dir)
    xtr, ytr, xte, yte = _load_uint8(str(root), spec)
    return {
        "dataset": spec.name,
        "title": spec.title,
        "root": str(root),
        "directory": str(root / spec.folder),
        "train": int(len(ytr)),
        "test": int(len(yte)),
        "shape": list(spec.shape),
        "classes": list(spec.class_names),
        "train_class_counts": torch.bincount(ytr, minlength=len(spec.class_names)).tolist(),
    }
