"""Shared fixtures for the headless test suite.

Environment, set once per session (before any test runs):

- ``ADV_TUI_DATA``: an existing value is honoured; otherwise ``../shared/data/mnist`` next to the repo
  (CI checks the repo out beside ``shared/``: ``/work/main`` and ``/work/shared``).
- ``ADV_TUI_CACHE``: a fresh temporary directory, so MNIST is unpacked there and the tests never write
  into the user's cache (or into the read-only data root).
- ``ADV_TUI_DB`` / ``ADV_TUI_CHECKPOINTS``: pointed into the session's temporary directory, so a test that
  forgets ``--db`` can never touch ``./runs.db`` or the user's checkpoints.

Subprocesses started by tests inherit all of these.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist"
MNIST_GZ = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("adv-tui-env")
    mp = pytest.MonkeyPatch()
    if not os.environ.get("ADV_TUI_DATA"):
        mp.setenv("ADV_TUI_DATA", str(DEFAULT_DATA))
    mp.setenv("ADV_TUI_CACHE", str(base / "cache"))
    mp.setenv("ADV_TUI_DB", str(base / "default-runs.db"))
    mp.setenv("ADV_TUI_CHECKPOINTS", str(base / "checkpoints"))
    mp.setenv("ADV_TUI_CONFIG", str(base / "config"))  # the dashboard's settings (theme)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def mnist_root(_isolated_env) -> Path:
    """The MNIST data root the tests read (never written)."""
    root = Path(os.environ["ADV_TUI_DATA"])
    raw = root / "MNIST" / "raw"
    if not all((raw / f).is_file() for f in MNIST_GZ):
        pytest.fail(
            f"MNIST not found in {raw}: set ADV_TUI_DATA to a directory holding MNIST/raw/*.gz "
            f"(default {DEFAULT_DATA})",
            pytrace=False,
        )
    return root


@pytest.fixture(scope="session")
def mnist_full(mnist_root):
    """All of MNIST (60k/10k) on CPU, loaded once per session."""
    from tui_adv.core.data import load_mnist

    return load_mnist(mnist_root, "cpu")


@pytest.fixture(scope="session")
def mnist_small(mnist_root):
    """A small real-MNIST subset for training tests: 1000 train, 500 test."""
    from tui_adv.core.data import load_mnist

    return load_mnist(mnist_root, "cpu", train_limit=1000, test_limit=500)


@pytest.fixture(scope="session")
def mnist_3v7_small(mnist_root):
    from tui_adv.core.data import load_mnist

    return load_mnist(mnist_root, "cpu", pair=(3, 7), train_limit=1000, test_limit=500)


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    """A fresh SQLite catalog (file) per test."""
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def store(catalog_url):
    from tui_adv.catalog import Store

    s = Store(catalog_url)
    yield s
    s.close()


def make_images(n: int, seed: int = 0, *, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """(n, 1, 28, 28) float32 images in [low, high], with some pixels exactly 0 and 1 (as in MNIST)."""
    g = torch.Generator().manual_seed(seed)
    x = low + (high - low) * torch.rand(n, 1, 28, 28, generator=g)
    if low == 0.0 and high == 1.0:
        mask = torch.rand(n, 1, 28, 28, generator=g)
        x = torch.where(mask < 0.2, torch.zeros_like(x), x)
        x = torch.where(mask > 0.9, torch.ones_like(x), x)
    return x


def make_labels(n: int, num_classes: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1000)
    return torch.randint(0, num_classes, (n,), generator=g)


@pytest.fixture
def images():
    return make_images


@pytest.fixture
def labels():
    return make_labels


# small versions of every model kind, seeded; (kind, num_classes, params)
TINY_MODELS = {
    "softmax": ("softmax", 10, {}),
    "logistic": ("logistic", 2, {}),
    "maxout": ("maxout", 10, {"units": 16, "pieces": 3, "input_dropout": 0.2, "hidden_dropout": 0.5, "init_range": 0.05}),
    "rbf": ("rbf", 10, {"init_beta": 0.05}),
    "inception": ("inception", 10, {"width": 1}),
}


def build_tiny(name: str, seed: int = 0) -> torch.nn.Module:
    from tui_adv.core.models import build_model

    kind, num_classes, params = TINY_MODELS[name]
    torch.manual_seed(seed)
    model = build_model(kind, num_classes=num_classes, **params)
    if name == "inception":
        # give BatchNorm non-trivial running statistics, so eval mode differs from train mode
        with torch.no_grad():
            model.train()
            model(make_images(32, seed=99))
    return model


def run_cli(*args: str, env: dict | None = None, timeout: float = 300):
    """``python -m tui_adv.cli ARGS`` in the repo root; returns the CompletedProcess."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "tui_adv.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def tiny_model():
    """Factory: ``tiny_model(name, seed=0)`` builds a small seeded model of that kind."""
    return build_tiny


@pytest.fixture(scope="session")
def cli():
    """Factory: ``cli(*args)`` runs ``python -m tui_adv.cli`` in a subprocess."""
    return run_cli


# ------------------------------------------------------------------------------------------ PostgreSQL
ENV_PG_URL = "ADV_TUI_TEST_PG_URL"  # a server the tests may create databases on (.ci/run starts one)
ENV_REQUIRE_PG = "ADV_TUI_REQUIRE_PG"  # "1": fail instead of skipping when no server can be had (CI)


@pytest.fixture(scope="session")
def pg_server():
    """URL of a real PostgreSQL server: ``$ADV_TUI_TEST_PG_URL``, else a throwaway cluster started for
    this session (tests/pgcluster.py). Skipped only when the PostgreSQL binaries are absent."""
    sys.path.insert(0, str(REPO / "tests"))
    import pgcluster

    url = os.environ.get(ENV_PG_URL)
    if url:
        yield url
        return
    if pgcluster.binaries() is None:
        reason = "PostgreSQL binaries (initdb) not installed and $ADV_TUI_TEST_PG_URL not set"
        if os.environ.get(ENV_REQUIRE_PG) == "1":
            pytest.fail(reason + f" (${ENV_REQUIRE_PG}=1)", pytrace=False)
        pytest.skip(reason)
    url, root = pgcluster.start()
    try:
        yield url
    finally:
        pgcluster.stop(root)


@pytest.fixture
def pg_db(pg_server):
    """A fresh, empty database on the real server, dropped after the test."""
    import pgcluster

    url = pgcluster.create_database(pg_server)
    yield url
    pgcluster.drop_database(pg_server, url)


# ------------------------------------------------------------------------------------------ Ray
ENV_REQUIRE_RAY = "ADV_TUI_REQUIRE_RAY"  # "1" (CI): fail instead of skipping when Ray is not installed


@pytest.fixture(scope="module")
def ray_address():
    """The address of a local Ray cluster (2 CPUs, no dashboard) started for one test module, which CLI
    subprocesses and the dashboard reach with --ray-address; shut down after the module."""
    try:
        import ray
    except ImportError:
        if os.environ.get(ENV_REQUIRE_RAY) == "1":
            pytest.fail("Ray is not installed but $ADV_TUI_REQUIRE_RAY=1 (pip install -e '.[test,cluster]')", pytrace=False)
        pytest.skip("Ray is not installed (pip install -e '.[cluster]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
