"""Small dataset roots in the official formats, written by the tests (imported as a plain module).

- the MNIST family: the four gzipped idx files (``ROOT/<Class>/raw/*.gz``: magic 0x0803 / 0x0801,
  big-endian dimensions, then the bytes), as yann.lecun.com, zalando and rois-codh publish them;
- CIFAR-10: ``ROOT/cifar-10-batches-py/`` with five pickled training batches, the test batch and
  ``batches.meta``, pickled with protocol 2 and the keys of the originals (``data`` (N, 3072) uint8 with
  the red, green and blue planes in turn, ``labels``, ``batch_label``, ``filenames``), or the
  ``cifar-10-python.tar.gz`` that holds them.

Each writer returns the dataset's spec with the md5s of the files it wrote, which the tests install in
``tui_adv.core.data.DATASETS``: the loader then verifies the fixtures with the same code that verifies
the real files against torchvision's md5s.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from tui_adv.core import data as data_mod


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def images(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images whose class (0-9) is learnable: a bright square at a class-dependent place on
    noise. Labels cycle through 0-9 after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    x = rng.integers(0, 60, size=(n, *shape), dtype=np.uint8)
    h, w = shape[-2], shape[-1]
    for i, c in enumerate(y):
        r, col = (int(c) // 5) * (h // 2) + 2, (int(c) % 5) * (w // 5) + 1
        x[i, ..., r : r + h // 3, col : col + w // 6] = 255
    return x, y


def _idx_bytes(arr: np.ndarray) -> bytes:
    code = 0x08  # unsigned byte
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_idx_root(root: Path, name: str, n_train: int = 300, n_test: int = 100, seed: int = 0) -> data_mod.DatasetSpec:
    """``root/<Class>/raw/*.gz`` for an MNIST-family dataset; returns its spec with these files' md5s."""
    spec = data_mod.DATASETS[name]
    raw = root / spec.folder
    raw.mkdir(parents=True, exist_ok=True)
    xtr, ytr = images(n_train, (28, 28), seed)
    xte, yte = images(n_test, (28, 28), seed + 1)
    table = {}
    for fname, arr in zip(data_mod._IDX_NAMES, (xtr, ytr, xte, yte)):
        blob = gzip.compress(_idx_bytes(arr), mtime=0)
        (raw / fname).write_bytes(blob)
        table[fname] = _md5(blob)
    return spec.with_files(table, n_train=n_train, n_test=n_test)


def _cifar_blobs(n_train: int, n_test: int, seed: int) -> dict[str, bytes]:
    xtr, ytr = images(n_train, (3, 32, 32), seed)
    xte, yte = images(n_test, (3, 32, 32), seed + 1)
    blobs = {}
    per = -(-n_train // 5)
    for b in range(5):
        sl = slice(b * per, min((b + 1) * per, n_train))
        d = {"batch_label": f"training batch {b + 1} of 5", "labels": [int(v) for v in ytr[sl]],
             "data": xtr[sl].reshape(-1, 3072), "filenames": [f"img_{i}.png" for i in range(sl.start, sl.stop)]}
        blobs[f"data_batch_{b + 1}"] = pickle.dumps(d, protocol=2)
    blobs["test_batch"] = pickle.dumps({"batch_label": "testing batch 1 of 1", "labels": [int(v) for v in yte], "data": xte.reshape(-1, 3072),
                                        "filenames": [f"test_{i}.png" for i in range(n_test)]}, protocol=2)
    blobs["batches.meta"] = pickle.dumps({"num_cases_per_batch": per, "label_names": list(data_mod.DATASETS["cifar10"].class_names), "num_vis": 3072},
                                         protocol=2)
    return blobs


def write_cifar_root(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0, *, archive: bool = False) -> data_mod.DatasetSpec:
    """``root/cifar-10-batches-py/`` (or, ``archive=True``, only ``root/cifar-10-python.tar.gz``)."""
    spec = data_mod.DATASETS["cifar10"]
    blobs = _cifar_blobs(n_train, n_test, seed)
    table = {name: _md5(blobs[name]) for name, _ in spec.files}
    arch = None
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, _ in spec.files:
                info = tarfile.TarInfo(f"{spec.folder}/{name}")
                info.size = len(blobs[name])
                tar.addfile(info, io.BytesIO(blobs[name]))
        (root / spec.archive[0]).write_bytes(buf.getvalue())
        arch = (spec.archive[0], _md5(buf.getvalue()))
    else:
        folder = root / spec.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, blob in blobs.items():
            (folder / name).write_bytes(blob)
    return spec.with_files(table, n_train=n_train, n_test=n_test, archive=arch)


def expected_pixels(name: str, n_train: int = 300, n_test: int = 100, seed: int = 0):
    """The uint8 arrays the writers above put in a root: (xtr, ytr, xte, yte), images (N, C, H, W)."""
    shape = (3, 32, 32) if name == "cifar10" else (28, 28)
    xtr, ytr = images(n_train, shape, seed)
    xte, yte = images(n_test, shape, seed + 1)
    if name != "cifar10":
        xtr, xte = xtr[:, None], xte[:, None]
    return xtr, ytr, xte, yte


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime (to show nothing was written)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}
