"""MNIST as whole-split tensors on the run's device.

The data root is resolved as ``--data-dir`` > ``$ADV_TUI_DATA`` > a per-user cache directory. The root
is treated as read-only: when the files there are the compressed originals, they are md5-checked and
unpacked into the cache, never next to the originals.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import UserError
from ..safe import expand_user

ENV_DATA = "ADV_TUI_DATA"

# (compressed file name, md5 of the compressed file): the originals, as torchvision lists them.
MNIST_FILES = (
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
)

TRAIN_SIZE = 50_000  # the paper's split: first 50k train, last 10k validation


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("ADV_TUI_CACHE") or user_cache_dir("adv-tui"))


def resolve_data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``--data-dir`` > ``$ADV_TUI_DATA`` > the per-user cache."""
    if data_dir:
        return expand_user(data_dir)
    env = os.environ.get(ENV_DATA)
    if env:
        return expand_user(env)
    return cache_dir() / "data"


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fix_hint(root: Path) -> str:
    return (
        f"put the four MNIST files (train-images-idx3-ubyte.gz, …) in {root / 'MNIST' / 'raw'}, "
        f"or point --data-dir / ${ENV_DATA} at a directory that has them"
    )


def _prepare_raw(root: Path) -> Path:
    """Return a torchvision-style root whose ``MNIST/raw`` holds the unpacked, verified files.

    The root is never created or written: a root that was asked for (``--data-dir``, ``$ADV_TUI_DATA``)
    and does not exist is an error, and a download goes into the cache."""
    if not root.is_dir() and root != cache_dir() / "data":
        raise UserError(f"the data directory {root} does not exist (nothing was created); {_fix_hint(root)}")
    raw = root / "MNIST" / "raw"
    unpacked = [raw / name[:-3] for name, _ in MNIST_FILES]
    if all(p.is_file() for p in unpacked):
        _check_unpacked(unpacked, root)
        return root
    packed = [raw / name for name, _ in MNIST_FILES]
    if all(p.is_file() for p in packed):
        for p, (name, md5) in zip(packed, MNIST_FILES):
            if _md5(p) != md5:
                raise UserError(f"MNIST file {p} is corrupt (md5 mismatch); replace it with the original: {_fix_hint(root)}")
        return _unpack_into_cache(packed)
    # No files at all: download into the cache as torchvision does (needs the internet).
    return _download(root)


def _check_unpacked(paths: list[Path], root: Path) -> None:
    # idx headers: images 16 bytes + n*784, labels 8 bytes + n
    expected = {
        "train-images-idx3-ubyte": 16 + 60000 * 784,
        "train-labels-idx1-ubyte": 8 + 60000,
        "t10k-images-idx3-ubyte": 16 + 10000 * 784,
        "t10k-labels-idx1-ubyte": 8 + 10000,
    }
    for p in paths:
        if p.stat().st_size != expected[p.name]:
            raise UserError(f"MNIST file {p} is truncated or corrupt (size {p.stat().st_size}); {_fix_hint(root)}")


def _unpack_into_cache(packed: list[Path]) -> Path:
    key = hashlib.md5("".join(md5 for _, md5 in MNIST_FILES).encode()).hexdigest()[:12]
    target_root = cache_dir() / f"mnist-{key}"
    raw = target_root / "MNIST" / "raw"
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for p in packed:
            out = raw / p.name[:-3]
            if out.is_file():
                continue
            # a per-process temp name: several runs may unpack into a fresh cache at once
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            try:
                with gzip.open(p, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as e:
                tmp.unlink(missing_ok=True)
                raise UserError(f"cannot unpack {p}: {e}") from None
            os.replace(tmp, out)
    except PermissionError as e:
        raise UserError(f"cannot write the unpacked MNIST files to the cache {raw}: {e.strerror}; set ADV_TUI_CACHE to a writable directory") from None
    return target_root


def _download(root: Path) -> Path:
    from torchvision.datasets import MNIST

    target = cache_dir() / "download"  # never into the root: it is read-only to us
    try:
        MNIST(str(target), train=True, download=True)
        MNIST(str(target), train=False, download=True)
    except Exception:  # noqa: BLE001 - any download failure is the same user-facing problem
        raise UserError(f"MNIST not found in {root / 'MNIST' / 'raw'} and it could not be downloaded; {_fix_hint(root)}") from None
    return target


@dataclass
class Split:
    """A dataset split as tensors: ``x`` (N,1,28,28) float in [0,1], ``y`` (N,) int64 class labels."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))

    def limit(self, n: int | None) -> "Split":
        return self if n is None or n >= len(self) else Split(self.x[:n], self.y[:n])


@lru_cache(maxsize=4)
def _load_uint8(root: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST

    prepared = _prepare_raw(Path(root))
    try:
        tr = MNIST(str(prepared), train=True, download=False)
        te = MNIST(str(prepared), train=False, download=False)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot read MNIST from {prepared / 'MNIST' / 'raw'}: {e}; {_fix_hint(Path(root))}") from None
    return tr.data, tr.targets, te.data, te.targets


def _to_split(images: torch.Tensor, labels: torch.Tensor, device: torch.device | str) -> Split:
    x = images.to(device=device).unsqueeze(1).to(torch.float32).div_(255.0)
    return Split(x, labels.to(device=device, dtype=torch.long))


@dataclass
class MNISTData:
    """The splits one run uses. ``train``/``valid`` follow the paper's 50k/10k split when requested."""

    train: Split
    test: Split
    valid: Split | None
    classes: tuple[int, ...]


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    *,
    pair: tuple[int, int] | None = None,
    validation: bool = False,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> MNISTData:
    """Load MNIST (whole splits, float in [0,1], on ``device``).

    ``pair=(a, b)`` keeps only digits a and b, relabelled 0 (a) and 1 (b). ``validation=True`` holds out
    the last 10k of the 60k training images (after the pair filter: the last sixth) as validation.
    Limits are applied after the split, keeping the first examples.
    """
    root = resolve_data_root(data_dir)
    xtr, ytr, xte, yte = _load_uint8(str(root))
    classes: tuple[int, ...] = tuple(range(10))
    if pair is not None:
        a, b = pair
        if a == b or not (0 <= a <= 9 and 0 <= b <= 9):
            raise UserError(f"data.pair must be two different digits 0-9, got {list(pair)}")
        mtr = (ytr == a) | (ytr == b)
        mte = (yte == a) | (yte == b)
        # split boundary in the original index space, so validation is still "the last 10k images"
        is_train_part = torch.arange(len(ytr)) < TRAIN_SIZE
        valid_mask = mtr & ~is_train_part
        train_mask = mtr & is_train_part if validation else mtr
        xv, yv = xtr[valid_mask], (ytr[valid_mask] == b).long()
        xtr, ytr = xtr[train_mask], (ytr[train_mask] == b).long()
        xte, yte = xte[mte], (yte[mte] == b).long()
        classes = (a, b)
    else:
        xv, yv = xtr[TRAIN_SIZE:], ytr[TRAIN_SIZE:]
        if validation:
            xtr, ytr = xtr[:TRAIN_SIZE], ytr[:TRAIN_SIZE]
    train = _to_split(xtr, ytr, device).limit(train_limit)
    test = _to_split(xte, yte, device).limit(test_limit)
    valid = _to_split(xv, yv, device).limit(test_limit) if validation else None
    return MNISTData(train=train, test=test, valid=valid, classes=classes)
