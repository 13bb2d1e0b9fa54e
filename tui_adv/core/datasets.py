"""The dataset registry and the files on disk: what each dataset is (:class:`DatasetSpec`, :data:`DATASETS`)
and how a data root is found, checked and made readable.

The data root is resolved as ``--data-dir`` > ``$ADV_TUI_DATA`` > a per-user cache directory, and holds
each dataset in torchvision's layout: ``ROOT/MNIST/raw/*.gz``, ``ROOT/FashionMNIST/raw/*.gz``,
``ROOT/KMNIST/raw/*.gz``, ``ROOT/cifar-10-batches-py/`` (or the ``ROOT/cifar-10-python.tar.gz`` it is
unpacked from). The root is read-only to us: every original file is md5-checked against its dataset's
table (torchvision's md5s), the compressed ones are unpacked into the cache, never next to the
originals, and :func:`prepare` returns the root torchvision's own dataset classes then read
(:mod:`tui_adv.core.data` loads the splits from it). A missing or corrupt file is one :class:`UserError`
line naming the directory and the files expected there.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UserError
from ..safe import expand_user

ENV_DATA = "ADV_TUI_DATA"


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is on disk and in memory. ``files`` are the originals with their md5s (as the
    torchvision class lists them); the loader checks every file against this table, so a test can load
    small files it wrote in the same format by giving the spec its own table (:meth:`with_files`)."""

    name: str  # the config's data.dataset
    title: str
    torchvision: str  # the torchvision class that reads it
    folder: str  # where the files are, relative to the root
    files: tuple[tuple[str, str], ...]  # (file name, md5)
    kind: str  # "idx" (the MNIST family, gzipped idx files) | "cifar" (pickled batches)
    shape: tuple[int, int, int]  # (channels, height, width)
    n_train: int
    n_test: int
    class_names: tuple[str, ...]
    archive: tuple[str, str] | None = None  # (file name in the root, md5) of an archive the folder comes from

    @property
    def grey28(self) -> bool:
        return self.shape == (1, 28, 28)

    def with_files(self, files: dict[str, str] | tuple[tuple[str, str], ...], *, n_train: int, n_test: int, archive: tuple[str, str] | None = None) -> "DatasetSpec":
        """The same dataset with another checksum table and sizes (test fixtures in the official format)."""
        table = tuple(files.items()) if isinstance(files, dict) else tuple(files)
        return replace(self, files=table, n_train=n_train, n_test=n_test, archive=archive)


_IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _idx(name: str, title: str, tv: str, md5s: tuple[str, str, str, str], classes: tuple[str, ...]) -> DatasetSpec:
    return DatasetSpec(name, title, tv, f"{tv}/raw", tuple(zip(_IDX_NAMES, md5s)), "idx", (1, 28, 28), 60_000, 10_000, classes)


# md5s as torchvision 0.29 lists them (MNIST.resources, FashionMNIST.resources, KMNIST.resources,
# CIFAR10.train_list/test_list/meta/tgz_md5); tests/test_datasets.py compares them with torchvision's
DATASETS: dict[str, DatasetSpec] = {
    "mnist": _idx("mnist", "MNIST", "MNIST",
                  ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432", "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
                  tuple(str(d) for d in range(10))),
    "fashion_mnist": _idx("fashion_mnist", "Fashion-MNIST", "FashionMNIST",
                          ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe", "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
                          ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
    "kmnist": _idx("kmnist", "KMNIST", "KMNIST",
                   ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344", "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
                   ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
    "cifar10": DatasetSpec(
        "cifar10", "CIFAR-10", "CIFAR10", "cifar-10-batches-py",
        (("data_batch_1", "c99cafc152244af753f735de768cd75f"), ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
         ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"), ("data_batch_4", "634d18415352ddfa80567beed471001a"),
         ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"), ("test_batch", "40351d587109b95175f43aff81a1287e"),
         ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888")),
        "cifar", (3, 32, 32), 50_000, 10_000,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        archive=("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    ),
}
DATASET_NAMES = tuple(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None


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


def expected_files(spec: DatasetSpec, root: Path) -> str:
    """'the N files (a, b, …) in DIR' — what a user must put where."""
    names = ", ".join(n for n, _ in spec.files)
    alt = f" (or {spec.archive[0]} in {root}, which holds them)" if spec.archive else ""
    return f"the {len(spec.files)} {spec.title} files ({names}) in {root / spec.folder}{alt}"


def _fix_hint(root: Path, spec: DatasetSpec | None = None) -> str:
    spec = spec or DATASETS["mnist"]
    return f"put {expected_files(spec, root)}, or point --data-dir / ${ENV_DATA} at a directory that has them"


def _check_root(root: Path, spec: DatasetSpec) -> None:
    if not root.is_dir() and root != cache_dir() / "data":
        raise UserError(f"the data directory {root} does not exist (nothing was created); {_fix_hint(root, spec)}")


def _verify(paths: list[Path], spec: DatasetSpec, root: Path, table: tuple[tuple[str, str], ...] | None = None) -> None:
    """Every file against its md5 in the spec's table: one line naming the first bad file."""
    for p, (name, md5) in zip(paths, table or spec.files):
        if _md5(p) != md5:
            raise UserError(f"{spec.title} file {p} is corrupt (md5 mismatch); replace it with the original: {_fix_hint(root, spec)}")


def _cache_key(spec: DatasetSpec) -> str:
    return hashlib.md5("".join(md5 for _, md5 in spec.files).encode()).hexdigest()[:12]


def _cache_root(spec: DatasetSpec) -> Path:
    """Content-addressed (by the md5s of the originals), so fixtures and real files never mix."""
    return cache_dir() / f"{spec.name.replace('_', '-')}-{_cache_key(spec)}"


def _download(root: Path, spec: DatasetSpec) -> Path:
    """Download with torchvision into the cache (never into the root: it is read-only to us); needs the
    internet, which a machine without it answers at once (no DNS)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.torchvision)
    target = cache_dir() / "download"
    missing = [n for n, _ in spec.files if not (root / spec.folder / n).is_file()]
    try:
        cls(str(target), train=True, download=True)
        cls(str(target), train=False, download=True)
    except Exception:  # noqa: BLE001 - any download failure is the same user-facing problem
        what = f"{len(missing)} of its files are missing ({', '.join(missing)})" if len(missing) < len(spec.files) else "its files are missing"
        raise UserError(f"{spec.title} not found in {root / spec.folder} ({what}) and it could not be downloaded; {_fix_hint(root, spec)}") from None
    return target


# ------------------------------------------------------------------------------------------------ MNIST family
def _idx_header(path: Path) -> tuple[int, ...] | None:
    """The dimensions an idx file declares, when its size matches them (else None)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) != 4 or head[0] or head[1] or head[2] != 0x08 or not 1 <= head[3] <= 4:
                return None
            dims = struct.unpack(f">{head[3]}I", f.read(4 * head[3]))
    except (OSError, struct.error):
        return None
    n = 1
    for d in dims:
        n *= d
    return dims if path.stat().st_size == 4 + 4 * len(dims) + n else None


def _check_unpacked(paths: list[Path], root: Path, spec: DatasetSpec | None = None) -> None:
    """Unpacked idx files (as torchvision leaves them) have no md5 in torchvision's table: their headers
    must match their sizes and the dataset's shape and counts."""
    spec = spec or DATASETS["mnist"]
    for p in paths:
        n = spec.n_train if p.name.startswith("train") else spec.n_test
        want = (n, 28, 28) if "images" in p.name else (n,)
        if _idx_header(p) != want:
            raise UserError(f"{spec.title} file {p} is truncated or corrupt (size {p.stat().st_size}); {_fix_hint(root, spec)}")


def _unpack_into_cache(packed: list[Path], spec: DatasetSpec | None = None) -> Path:
    spec = spec or DATASETS["mnist"]
    target_root = _cache_root(spec)
    raw = target_root / spec.folder
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
        raise UserError(f"cannot write the unpacked {spec.title} files to the cache {raw}: {e.strerror}; set ADV_TUI_CACHE to a writable directory") from None
    return target_root


def _prepare_idx(root: Path, spec: DatasetSpec) -> Path:
    """A torchvision-style root whose ``<Class>/raw`` holds the unpacked, verified files."""
    _check_root(root, spec)
    raw = root / spec.folder
    unpacked = [raw / name[:-3] for name, _ in spec.files]
    if all(p.is_file() for p in unpacked):
        _check_unpacked(unpacked, root, spec)
        return root
    packed = [raw / name for name, _ in spec.files]
    if all(p.is_file() for p in packed):
        _verify(packed, spec, root)
        return _unpack_into_cache(packed, spec)
    return _download(root, spec)


def _prepare_raw(root: Path) -> Path:
    """MNIST's prepared root (kept for the benchmarks and tests that read MNIST's raw files)."""
    return _prepare_idx(root, DATASETS["mnist"])


# ------------------------------------------------------------------------------------------------ CIFAR-10
def _prepare_cifar(root: Path, spec: DatasetSpec) -> Path:
    """A root whose ``cifar-10-batches-py`` holds the verified batches: the root itself, or the cache
    when only the archive is there (unpacked there, never next to it)."""
    _check_root(root, spec)
    folder = root / spec.folder
    paths = [folder / n for n, _ in spec.files]
    if all(p.is_file() for p in paths):
        _verify(paths, spec, root)
        return root
    if spec.archive and (root / spec.archive[0]).is_file():
        archive = root / spec.archive[0]
        _verify([archive], spec, root, (spec.archive,))
        target = _cache_root(spec)
        out = [target / spec.folder / n for n, _ in spec.files]
        if not all(p.is_file() for p in out):
            _extract(archive, target, spec)
        _verify(out, spec, root)
        return target
    if folder.is_dir() and any(p.is_file() for p in paths):
        missing = [p.name for p in paths if not p.is_file()]
        raise UserError(f"{spec.title} in {folder} is incomplete: {', '.join(missing)} missing; {_fix_hint(root, spec)}")
    return _download(root, spec)


def _extract(archive: Path, target: Path, spec: DatasetSpec) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    wanted = {f"{spec.folder}/{n}" for n, _ in spec.files}
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
            tar.extractall(tmp, members=members, filter="data")
        target.mkdir(parents=True, exist_ok=True)
        (target / spec.folder).mkdir(exist_ok=True)
        for n, _ in spec.files:
            src = tmp / spec.folder / n
            if src.is_file():
                os.replace(src, target / spec.folder / n)
    except PermissionError as e:
        raise UserError(f"cannot unpack {archive} into the cache {target}: {e.strerror}; set ADV_TUI_CACHE to a writable directory") from None
    except (OSError, tarfile.TarError, EOFError) as e:
        raise UserError(f"cannot unpack {archive}: {e}; {_fix_hint(archive.parent, spec)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cifar_class(spec: DatasetSpec):
    """torchvision's CIFAR10, checking the spec's md5 table (torchvision's own for the real files)."""
    from torchvision.datasets import CIFAR10

    table = dict(spec.files)
    attrs = {
        "train_list": [[n, table[n]] for n, _ in spec.files if n.startswith("data_batch")],
        "test_list": [[n, table[n]] for n, _ in spec.files if n.startswith("test_batch")],
        "meta": {**CIFAR10.meta, "md5": table["batches.meta"]},
        "base_folder": spec.folder,
    }
    return type("CIFAR10", (CIFAR10,), attrs)


# ------------------------------------------------------------------------------------------------ the prepared root
def prepare(spec: DatasetSpec, data_dir: str | os.PathLike | None = None) -> Path:
    """Check a root for a dataset and return the root torchvision reads (the root or the cache)."""
    root = resolve_data_root(data_dir)
    return _prepare_cifar(root, spec) if spec.kind == "cifar" else _prepare_idx(root, spec)
