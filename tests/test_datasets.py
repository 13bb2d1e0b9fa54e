"""Fashion-MNIST, KMNIST and CIFAR-10 (and MNIST through the same code) on small files the tests write in
the official formats: the values come back as written, checksums are verified (the fixtures' own md5s,
installed in the spec table; the real table refuses them), corrupt and missing files give one line that
names the directory and the files expected, and the root is never written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _datasets import expected_pixels, tree, write_cifar_root, write_idx_root

from tui_adv.core import data as data_mod
from tui_adv.core.data import DATASETS, check_dataset, load_dataset
from tui_adv.errors import UserError

IDX = ["mnist", "fashion_mnist", "kmnist"]


@pytest.fixture(autouse=True)
def _no_download(monkeypatch, tmp_path):
    """Every download fails at once (a machine without the internet), into a fresh cache."""
    import torchvision.datasets as tvd

    monkeypatch.setenv("ADV_TUI_CACHE", str(tmp_path / "cache"))
    for cls in (tvd.MNIST, tvd.FashionMNIST, tvd.KMNIST):
        monkeypatch.setattr(cls, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(tvd.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")


def _install(monkeypatch, spec):
    monkeypatch.setitem(DATASETS, spec.name, spec)
    return spec


def test_md5_tables_are_torchvisions():
    import torchvision.datasets as tvd

    for name, cls in (("mnist", tvd.MNIST), ("fashion_mnist", tvd.FashionMNIST), ("kmnist", tvd.KMNIST)):
        assert list(DATASETS[name].files) == [tuple(r) for r in cls.resources]
        assert DATASETS[name].folder == f"{cls.__name__}/raw"
    c = DATASETS["cifar10"]
    assert dict(c.files) == {**{n: m for n, m in tvd.CIFAR10.train_list + tvd.CIFAR10.test_list}, tvd.CIFAR10.meta["filename"]: tvd.CIFAR10.meta["md5"]}
    assert c.archive == (tvd.CIFAR10.filename, tvd.CIFAR10.tgz_md5) and c.folder == tvd.CIFAR10.base_folder


@pytest.mark.parametrize("name", IDX)
def test_idx_fixture_loads_as_written(name, tmp_path, monkeypatch):
    root = tmp_path / "root"
    _install(monkeypatch, write_idx_root(root, name))
    before = tree(root)
    d = load_dataset(name, root)
    xtr, ytr, xte, yte = expected_pixels(name)
    assert d.dataset == name and d.classes == tuple(range(10)) and d.valid is None
    assert d.train.x.shape == (300, 1, 28, 28) and d.test.x.shape == (100, 1, 28, 28)
    assert torch.equal((d.train.x * 255).round().to(torch.uint8), torch.from_numpy(xtr))
    assert torch.equal(d.test.y, torch.from_numpy(yte).long()) and torch.equal(d.train.y, torch.from_numpy(ytr).long())
    assert tree(root) == before, "the data root was written"
    # the paper's split on a small set: its last sixth validates; limits keep the first examples
    v = load_dataset(name, root, validation=True, train_limit=40, test_limit=30)
    assert (len(v.train), len(v.valid), len(v.test)) == (40, 30, 30)
    assert torch.equal(v.valid.y, torch.from_numpy(ytr[250:280]).long())
    p = load_dataset(name, root, pair=(3, 7))
    assert set(p.train.y.tolist()) == {0, 1} and len(p.train) == int(((ytr == 3) | (ytr == 7)).sum())
    assert tree(root) == before


@pytest.mark.parametrize("name", IDX)
def test_real_table_refuses_the_fixtures(name, tmp_path):
    """Without the fixture table, the fixture files are checked against torchvision's md5s and refused."""
    root = tmp_path / "root"
    write_idx_root(root, name)
    with pytest.raises(UserError) as ei:
        load_dataset(name, root)
    msg = str(ei.value)
    assert "md5 mismatch" in msg and str(root / DATASETS[name].folder) in msg and "\n" not in msg


@pytest.mark.parametrize("name", ["fashion_mnist", "kmnist"])
def test_idx_corrupt_truncated_missing(name, tmp_path, monkeypatch):
    root = tmp_path / "root"
    spec = _install(monkeypatch, write_idx_root(root, name))
    raw = root / spec.folder
    target = raw / "train-labels-idx1-ubyte.gz"
    good = target.read_bytes()
    b = bytearray(good)
    b[len(b) // 2] ^= 0xFF
    target.write_bytes(bytes(b))
    before = tree(root)
    with pytest.raises(UserError) as ei:
        load_dataset(name, root)
    msg = str(ei.value)
    assert str(target) in msg and "corrupt" in msg and "train-images-idx3-ubyte.gz" in msg and str(raw) in msg and "\n" not in msg
    target.write_bytes(good[:10])
    with pytest.raises(UserError, match="corrupt"):
        load_dataset(name, root)
    target.unlink()
    with pytest.raises(UserError) as ei:
        load_dataset(name, root)
    msg = str(ei.value)
    assert "train-labels-idx1-ubyte.gz" in msg and str(raw) in msg and "could not be downloaded" in msg and "\n" not in msg
    assert set(tree(root)) == set(before) - {str(target.relative_to(root))}


def test_unpacked_idx_files_in_the_root(tmp_path, monkeypatch):
    """A root holding unpacked files (as torchvision leaves them): headers and sizes are checked."""
    import gzip

    root = tmp_path / "root"
    spec = _install(monkeypatch, write_idx_root(root, "fashion_mnist"))
    raw = root / spec.folder
    for gz in raw.glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    d = load_dataset("fashion_mnist", root)
    assert len(d.train) == 300
    img = raw / "t10k-images-idx3-ubyte"
    img.write_bytes(img.read_bytes()[:-1])
    with pytest.raises(UserError, match="truncated or corrupt") as ei:
        load_dataset("fashion_mnist", root)
    assert str(img) in str(ei.value)


def test_missing_root_and_dataset(tmp_path):
    with pytest.raises(UserError) as ei:
        load_dataset("fashion_mnist", tmp_path / "nope")
    msg = str(ei.value)
    assert "does not exist" in msg and str(tmp_path / "nope" / "FashionMNIST" / "raw") in msg
    assert not (tmp_path / "nope").exists()
    (tmp_path / "empty").mkdir()
    for name, where in (("fashion_mnist", "FashionMNIST/raw"), ("kmnist", "KMNIST/raw"), ("cifar10", "cifar-10-batches-py")):
        with pytest.raises(UserError) as ei:
            load_dataset(name, tmp_path / "empty")
        msg = str(ei.value)
        assert str(tmp_path / "empty" / where) in msg and "could not be downloaded" in msg and "\n" not in msg
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("svhn", tmp_path)


def test_cifar_fixture_loads_as_written(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _install(monkeypatch, write_cifar_root(root))
    before = tree(root)
    d = load_dataset("cifar10", root)
    xtr, ytr, xte, yte = expected_pixels("cifar10")
    assert d.dataset == "cifar10" and d.train.x.shape == (300, 3, 32, 32) and d.test.x.shape == (100, 3, 32, 32)
    assert d.train.x.dtype == torch.float32 and 0 <= float(d.train.x.min()) and float(d.train.x.max()) == 1.0
    # channel planes in the order the batches store them (R, G, B), rows then columns
    assert torch.equal((d.train.x * 255).round().to(torch.uint8), torch.from_numpy(xtr))
    assert torch.equal((d.test.x * 255).round().to(torch.uint8), torch.from_numpy(xte))
    assert torch.equal(d.train.y, torch.from_numpy(ytr).long()) and torch.equal(d.test.y, torch.from_numpy(yte).long())
    assert tree(root) == before
    info = check_dataset("cifar10", root)
    assert info["train"] == 300 and info["test"] == 100 and info["shape"] == [3, 32, 32] and info["classes"][0] == "airplane"


def test_cifar_from_the_archive_unpacks_into_the_cache(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _install(monkeypatch, write_cifar_root(root, archive=True))
    before = tree(root)
    d = load_dataset("cifar10", root)
    assert len(d.train) == 300 and torch.equal(d.test.y, torch.from_numpy(expected_pixels("cifar10")[3]).long())
    assert tree(root) == before
    assert list((tmp_path / "cache").glob("cifar10-*/cifar-10-batches-py/test_batch"))
    # a corrupt archive is refused by its md5
    arch = root / "cifar-10-python.tar.gz"
    arch.write_bytes(arch.read_bytes()[:-5])
    with pytest.raises(UserError, match="md5 mismatch") as ei:
        load_dataset("cifar10", root)
    assert str(arch) in str(ei.value)


def test_cifar_corrupt_incomplete_and_real_table(tmp_path, monkeypatch):
    root = tmp_path / "root"
    spec = write_cifar_root(root)
    folder = root / "cifar-10-batches-py"
    with pytest.raises(UserError, match="md5 mismatch"):  # torchvision's md5s refuse the fixtures
        load_dataset("cifar10", root)
    _install(monkeypatch, spec)
    batch = folder / "data_batch_3"
    b = bytearray(batch.read_bytes())
    b[100] ^= 0x01
    batch.write_bytes(bytes(b))
    with pytest.raises(UserError) as ei:
        load_dataset("cifar10", root)
    msg = str(ei.value)
    assert str(batch) in msg and "corrupt" in msg and "test_batch" in msg and str(folder) in msg and "\n" not in msg
    batch.unlink()
    with pytest.raises(UserError) as ei:
        load_dataset("cifar10", root)
    assert "data_batch_3 missing" in str(ei.value) and str(folder) in str(ei.value)


def test_cifar_pickle_with_wrong_shape_is_one_line(tmp_path, monkeypatch):
    """A batch with the right md5 in its table but the wrong content (not 3072 values a row) is refused
    in one line, not a numpy traceback."""
    import hashlib
    import pickle

    root = tmp_path / "root"
    spec = write_cifar_root(root)
    folder = root / "cifar-10-batches-py"
    blob = pickle.dumps({"labels": [0, 1], "data": np.zeros((2, 100), dtype=np.uint8)}, protocol=2)
    (folder / "test_batch").write_bytes(blob)
    table = dict(spec.files)
    table["test_batch"] = hashlib.md5(blob).hexdigest()
    _install(monkeypatch, spec.with_files(table, n_train=300, n_test=100))
    with pytest.raises(UserError) as ei:
        load_dataset("cifar10", root)
    assert "cannot read CIFAR-10" in str(ei.value) and "\n" not in str(ei.value)


def test_colour_views_and_their_grey_fallback():
    """A stored CIFAR sample (3072 bytes, R, G, B planes) draws as 16 rows of 32 colour cells, and as
    grey (its luminance) where there is no colour; the sign image per channel, and by the channels' sum."""
    from tui_adv.views import colour_cells, grey, grey_sign, halfblock, image_shape, sign_image

    img = bytearray(3072)
    img[0:1024] = bytes([255]) * 1024  # all red
    img[1024 + 32 : 1024 + 64] = bytes([255]) * 32  # row 1 green too: yellow
    cells = colour_cells(bytes(img))
    assert len(cells) == 16 and all(len(r) == 32 for r in cells)
    assert cells[0][0] == ((255, 0, 0), (255, 255, 0)) and cells[1][0] == ((255, 0, 0), (255, 0, 0))
    assert image_shape(bytes(img)) == (3, 32, 32) and image_shape(bytes(784)) == (1, 28, 28) and image_shape(b"x") is None
    assert grey(bytes(img))[0] == pytest.approx(0.299 * 255) and len(grey(bytes(img))) == 1024
    lines = halfblock(bytes(img))
    assert len(lines) == 16 and all(len(line) == 32 for line in lines)
    assert lines[0][0] == "▄"  # top pixel red (luminance .3: faint), bottom yellow (.89: on)
    sign = bytes([2] * 1024 + [2] * 1024 + [0] * 1024)  # +, +, −: sum +1
    assert grey_sign(sign) == bytes([2] * 1024) and sign_image(sign)[0] == "█" * 32
    assert colour_cells(sign, sign=True)[0][0] == ((255, 255, 0), (255, 255, 0))
    assert halfblock(bytes(784)) == [" " * 28] * 14  # grey images as before
    with pytest.raises(ValueError):
        colour_cells(bytes(784))
