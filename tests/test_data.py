"""MNIST loading on the real files: shapes, ranges, label counts, splits; corrupt/missing data; the cache."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from tui_adv.core import data as data_mod
from tui_adv.core.data import load_mnist, resolve_data_root
from tui_adv.errors import UserError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
GZ = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_full_mnist(mnist_full):
    d = mnist_full
    assert d.valid is None and d.classes == tuple(range(10))
    for split, n, counts in ((d.train, 60000, TRAIN_COUNTS), (d.test, 10000, TEST_COUNTS)):
        assert split.x.shape == (n, 1, 28, 28) and split.x.dtype == torch.float32
        assert split.y.shape == (n,) and split.y.dtype == torch.int64
        assert split.x.min() == 0.0 and split.x.max() == 1.0
        assert torch.bincount(split.y, minlength=10).tolist() == counts
        # pixels are k/255 exactly
        k = split.x[:100] * 255
        assert torch.equal(k, k.round())
    assert 0.12 < d.train.x.mean() < 0.14  # MNIST's mean intensity ≈ 0.1307


def test_pair_3v7(mnist_root, mnist_full):
    d = load_mnist(mnist_root, pair=(3, 7))
    assert d.classes == (3, 7)
    assert len(d.train) == 6131 + 6265 and len(d.test) == 1010 + 1028
    assert torch.bincount(d.train.y).tolist() == [6131, 6265]  # 3 → 0, 7 → 1
    assert torch.bincount(d.test.y).tolist() == [1010, 1028]
    # the images are the 3s and 7s, in order
    full_mask = (mnist_full.test.y == 3) | (mnist_full.test.y == 7)
    assert torch.equal(d.test.x, mnist_full.test.x[full_mask])
    assert torch.equal(d.test.y, (mnist_full.test.y[full_mask] == 7).long())
    # any pair, in either order
    d01 = load_mnist(mnist_root, pair=(1, 0), test_limit=100)
    assert d01.classes == (1, 0) and set(d01.test.y.tolist()) <= {0, 1}
    assert torch.bincount(d01.train.y).tolist() == [6742, 5923]  # 1 → 0, 0 → 1


@pytest.mark.parametrize("pair", [(3, 3), (3, 10), (-1, 2)])
def test_bad_pair(mnist_root, pair):
    with pytest.raises(UserError, match="pair"):
        load_mnist(mnist_root, pair=pair)


def test_validation_split(mnist_root, mnist_full):
    d = load_mnist(mnist_root, validation=True)
    assert len(d.train) == 50000 and len(d.valid) == 10000 and len(d.test) == 10000
    assert torch.equal(d.train.x, mnist_full.train.x[:50000])
    assert torch.equal(d.valid.x, mnist_full.train.x[50000:]) and torch.equal(d.valid.y, mnist_full.train.y[50000:])
    p = load_mnist(mnist_root, validation=True, pair=(3, 7))
    in_first = ((mnist_full.train.y[:50000] == 3) | (mnist_full.train.y[:50000] == 7)).sum().item()
    assert len(p.train) == in_first and len(p.train) + len(p.valid) == 6131 + 6265
    assert set(p.valid.y.tolist()) == {0, 1}


def test_limits(mnist_root, mnist_full):
    d = load_mnist(mnist_root, train_limit=1000, test_limit=300)
    assert len(d.train) == 1000 and len(d.test) == 300
    assert torch.equal(d.train.x, mnist_full.train.x[:1000]) and torch.equal(d.test.y, mnist_full.test.y[:300])
    v = load_mnist(mnist_root, validation=True, train_limit=10, test_limit=20)
    assert (len(v.train), len(v.valid), len(v.test)) == (10, 20, 20)
    big = load_mnist(mnist_root, train_limit=10**9)
    assert len(big.train) == 60000


def test_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("ADV_TUI_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("ADV_TUI_CACHE", str(tmp_path / "cache"))
    assert resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("ADV_TUI_DATA")
    assert resolve_data_root(None) == tmp_path / "cache" / "data"


def _copy_root(mnist_root: Path, dst: Path) -> Path:
    raw = dst / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in GZ:
        shutil.copyfile(mnist_root / "MNIST" / "raw" / f, raw / f)
    return raw


def test_truncated_file_is_a_user_error(mnist_root, tmp_path):
    raw = _copy_root(mnist_root, tmp_path / "root")
    target = raw / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(UserError) as ei:
        load_mnist(tmp_path / "root")
    msg = str(ei.value)
    assert str(raw) in msg and "corrupt" in msg and "\n" not in msg


def test_altered_file_is_a_user_error(mnist_root, tmp_path):
    raw = _copy_root(mnist_root, tmp_path / "root")
    target = raw / "train-labels-idx1-ubyte.gz"
    b = bytearray(target.read_bytes())
    b[len(b) // 2] ^= 0xFF  # same size, one byte changed
    target.write_bytes(bytes(b))
    with pytest.raises(UserError) as ei:
        load_mnist(tmp_path / "root")
    assert str(raw) in str(ei.value)


def test_truncated_unpacked_file_is_a_user_error(mnist_root, tmp_path):
    """A root holding unpacked files (as torchvision leaves them): sizes are checked."""
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in GZ:
        with gzip.open(mnist_root / "MNIST" / "raw" / f, "rb") as src:
            data = src.read()
        if f.startswith("t10k-images"):
            data = data[: len(data) // 2]
        (raw / f[:-3]).write_bytes(data)
    with pytest.raises(UserError, match="truncated or corrupt") as ei:
        load_mnist(tmp_path / "root")
    assert str(raw) in str(ei.value)


def test_missing_directory_is_a_user_error(tmp_path, monkeypatch):
    """No files and no way to download (every mirror refuses): one line naming where we looked."""
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    root = tmp_path / "no-such-dir"
    with pytest.raises(UserError) as ei:
        load_mnist(root)
    msg = str(ei.value)
    assert str(root) in msg and "\n" not in msg and ("ADV_TUI_DATA" in msg or "--data-dir" in msg)


def test_unpacks_into_cache_never_into_root(mnist_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ADV_TUI_CACHE", str(cache))
    root = tmp_path / "root"
    _copy_root(mnist_root, root)
    before = _tree(root)
    real_before = _tree(mnist_root)
    prepared = data_mod._prepare_raw(root)
    assert cache in prepared.parents
    for f in GZ:
        out = prepared / "MNIST" / "raw" / f[:-3]
        assert out.is_file() and out.stat().st_size > 0
    assert _tree(root) == before, "something was written into the data root"
    d = load_mnist(root, train_limit=5, test_limit=5)  # loads from the cache
    assert len(d.train) == 5
    assert _tree(root) == before
    # the shared read-only root was never written either (the session's loads unpacked to the cache)
    load_mnist(mnist_root, train_limit=5)
    assert _tree(mnist_root) == real_before
    assert not list((mnist_root / "MNIST").glob("processed*"))
    assert not [p for p in (mnist_root / "MNIST" / "raw").iterdir() if not p.name.endswith(".gz")]


def test_concurrent_unpacking_into_one_cache(mnist_root, tmp_path):
    """Several runs started at once on a fresh cache (the dashboard launching a queue) all succeed."""
    import subprocess
    import sys

    cache = tmp_path / "cache"
    code = (
        "import sys; from pathlib import Path; from tui_adv.core.data import _prepare_raw;"
        "p = _prepare_raw(Path(sys.argv[1])); print(p)"
    )
    env = {**os.environ, "ADV_TUI_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(mnist_root)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    for out, err, rc in results:
        assert rc == 0, err[-2000:]
    prepared = Path(results[0][0].strip())
    sizes = {f[:-3]: (prepared / "MNIST" / "raw" / f[:-3]).stat().st_size for f in GZ}
    assert sizes == {
        "train-images-idx3-ubyte": 16 + 60000 * 784,
        "train-labels-idx1-ubyte": 8 + 60000,
        "t10k-images-idx3-ubyte": 16 + 10000 * 784,
        "t10k-labels-idx1-ubyte": 8 + 10000,
    }
    assert not list((prepared / "MNIST" / "raw").glob(".*.tmp"))
