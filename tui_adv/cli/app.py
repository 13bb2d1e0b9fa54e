"""The typer application, its shared options, and the console-script entry point :func:`main`.

The commands live beside this module (``run``, ``runs``, ``suite``); each registers itself on
:data:`app` / :data:`runs_app` when ``tui_adv.cli`` is imported. Nothing heavy is imported here, so
``adv-tui --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import ExecutorKind
from ..errors import UserError
from ..safe import one_line
from ..services.launch import ENV_RAY_ADDRESS  # read by the dashboard too


def _flags_without_type() -> None:
    """typer 0.29's rich help prints ``<bool>`` after every on/off flag (``--headless <bool>``), which
    reads as if the flag took a value; its plain (non-rich) help prints nothing there. Show nothing
    for flags in the rich help too; every other option keeps its type (``<int>``, choices, ``DIR``)."""
    from typer.core import TyperOption

    rich_type = getattr(TyperOption, "display_type_rich", None)
    if rich_type is None or getattr(rich_type, "_adv_tui", False):
        return

    def display_type_rich(self, ctx):  # noqa: ANN001, ANN202
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return rich_type(self, ctx)

    display_type_rich._adv_tui = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_type()

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Reproduce and explore 'Explaining and Harnessing Adversarial Examples' (FGSM) from a terminal. "
    "Plain `adv-tui` (no command) opens the dashboard.",
)
runs_app = typer.Typer(help="Browse the run catalog.", no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(runs_app, name="runs")

MAX_RUN_ID = 2**63 - 1  # SQLite's INTEGER (and PostgreSQL's BIGINT)

ENV_DB = "ADV_TUI_DB"  # read by catalog.store.resolve_db_url too
ENV_DATA = "ADV_TUI_DATA"  # read by core.datasets.resolve_data_root too


def _run_id(value: int) -> int:
    if not 1 <= value <= MAX_RUN_ID:
        raise UserError(f"run ids are whole numbers from 1 to {MAX_RUN_ID}, got {value} (see `adv-tui runs list`)")
    return value


RunIdArg = Annotated[int, typer.Argument(metavar="RUN_ID", callback=_run_id, help="Run id (see `adv-tui runs list`).")]
DbOpt = Annotated[
    Optional[str], typer.Option("--db", metavar="PATH|URL", envvar=ENV_DB, show_envvar=True, help="Catalog: a SQLite path or SQLAlchemy URL (default ./runs.db).")
]
DataOpt = Annotated[
    Optional[str], typer.Option("--data-dir", metavar="DIR", envvar=ENV_DATA, show_envvar=True, help="Data root in torchvision's layout: MNIST/raw, FashionMNIST/raw, KMNIST/raw, cifar-10-batches-py (default: the user cache).")
]
ENV_CHECKPOINTS = "ADV_TUI_CHECKPOINTS"  # read by runner.checkpoint_dir
CheckpointsOpt = Annotated[
    Optional[str],
    typer.Option("--checkpoints", envvar=ENV_CHECKPOINTS, show_envvar=True, metavar="DIR",
                 help="Checkpoint directory (default: next to a SQLite catalog, else the user cache); with many hosts, one they all mount at the same path."),
]
ExecutorOpt = Annotated[
    ExecutorKind,
    typer.Option("--executor", case_sensitive=False, help="Where the runs execute: local processes, or tasks on a Ray cluster (needs the cluster extra, i.e. Ray; a catalog every node reaches, such as PostgreSQL, for many nodes)."),
]
def ray_address_option(help_text: str) -> object:
    """``--ray-address ADDR`` (or ``$ADV_TUI_RAY_ADDRESS``), with the help of the command it is on."""
    return typer.Option("--ray-address", metavar="ADDR", envvar=ENV_RAY_ADDRESS, show_envvar=True, help=help_text)


RayAddressOpt = Annotated[
    Optional[str],
    ray_address_option("The Ray cluster for --executor ray (e.g. 10.0.0.5:6379, or auto); default: a local Ray started for this command."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
HeadlessOpt = Annotated[bool, typer.Option("--headless", help="No dashboard: progress bars on stderr.")]


def device_option(default_help: str) -> object:
    return typer.Option("--device", case_sensitive=False, help=f"Where to train (default: {default_help}).")



def _given(ctx: typer.Context, name: str, value: str | None) -> str | None:
    """An option's value when it was typed on the command line; ``None`` when it came from its
    environment variable or was not given (the layer below resolves the variable itself, so
    ``--db`` on a subcommand > ``--db`` before it > ``$ADV_TUI_DB`` > the default, as always)."""
    source = ctx.get_parameter_source(name)
    return value if source is not None and source.name == "COMMANDLINE" else None


def db_of(ctx: typer.Context, db: str | None) -> str | None:
    return _given(ctx, "db", db) or (ctx.obj or {}).get("db")


def data_dir_of(ctx: typer.Context, data_dir: str | None) -> str | None:
    return _given(ctx, "data_dir", data_dir) or (ctx.obj or {}).get("data_dir")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"adv-tui {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    db: DbOpt = None,
    data_dir: DataOpt = None,
    ray_address: Annotated[Optional[str], ray_address_option("A Ray cluster the dashboard's launch screen may send runs to (its 'run on' field).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """With no command: open the dashboard."""
    ctx.obj = {"db": _given(ctx, "db", db), "data_dir": _given(ctx, "data_dir", data_dir)}
    if ray_address and ray_address.strip():
        os.environ[ENV_RAY_ADDRESS] = ray_address.strip()  # read by the dashboard (services.launch)
    if ctx.invoked_subcommand is None:
        from ..tui.app import run_app

        run_app(db=ctx.obj["db"], data_dir=ctx.obj["data_dir"])


def reader_store(db: str | None):  # noqa: ANN201
    """The store of a command that only reads (runs list/show/export, report): it waits at most
    ``READER_LOCK_WAIT_S`` for a lock, and marks dead runs interrupted unless another process holds
    the lock right now (then it says so in one line and shows the catalog as it is)."""
    from ..catalog.store import READER_LOCK_WAIT_S, CatalogLocked, Store

    store = Store(db, lock_wait_s=READER_LOCK_WAIT_S)
    try:
        store.refresh_liveness()
    except CatalogLocked as e:
        print(f"adv-tui: note: {one_line(e)}; statuses are shown without the liveness check", file=sys.stderr)
    return store


# ------------------------------------------------------------------------------------------------ main
def crash_log_dir() -> Path:
    """``$ADV_TUI_CACHE/logs`` (the user cache); no torch import on this path."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("ADV_TUI_CACHE") or user_cache_dir("adv-tui")) / "logs"


def _write_crash_log(exc: BaseException) -> Path | None:
    """The traceback of an unexpected error, in a private file (0600) of the user cache."""
    import time
    import traceback

    from ..safe import scrub_secrets

    try:
        d = crash_log_dir()
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = d / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"adv-tui {' '.join(scrub_secrets(a) for a in sys.argv[1:])}\n\n")
            f.write(scrub_secrets("".join(traceback.format_exception(exc))))
        return path
    except OSError:
        return None


# Click's exceptions, from wherever this typer takes Click (newer typers vendor it as typer._click)
_click_errors = sys.modules[typer.BadParameter.__module__]
_ABORTS = tuple({typer.Abort, getattr(_click_errors, "Abort", typer.Abort)})


def main() -> None:
    """The console script: every failure ends as one line on stderr (exit 2: bad input, 1: a run that
    did not complete or an internal error, whose traceback goes to a log file named in that line)."""
    try:
        try:
            code = app(standalone_mode=False)
        finally:
            from ..catalog.store import close_all

            close_all()
    except UserError as e:
        print("adv-tui: error: " + one_line(e), file=sys.stderr)  # always one line
        sys.exit(e.exit_code)
    except _click_errors.NoArgsIsHelpError as e:  # `adv-tui runs`: the help, then what was missing
        typer.echo(e.ctx.get_help() if e.ctx is not None else "")
        print("adv-tui: error: missing command (see the list above)", file=sys.stderr)
        sys.exit(2)
    except _click_errors.ClickException as e:  # usage errors: one line instead of Click's boxed message
        ctx = getattr(e, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        msg = e.format_message()
        if isinstance(e, _click_errors.NoSuchOption) and e.option_name[1:].replace("_", "").isdigit():
            msg = f"{e.option_name} is not a run id (run ids are whole numbers from 1 to {MAX_RUN_ID})"
        print(f"adv-tui: error: {one_line(msg)}{where}", file=sys.stderr)
        sys.exit(e.exit_code if e.exit_code in (1, 2) else 2)
    except BrokenPipeError:  # `adv-tui runs list | head`: the reader went away, nothing to say
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet too
        except OSError:
            pass
        sys.exit(1)
    except _ABORTS:
        print("adv-tui: interrupted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("adv-tui: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        log = _write_crash_log(e)
        where = f"; the traceback is in {log}" if log else ""
        print(f"adv-tui: error: internal error: {type(e).__name__}: {one_line(e, 300)}{where} (please report it)", file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


def use_checkpoints(ctx: typer.Context, checkpoints: str | None) -> None:
    """``--checkpoints DIR`` typed on the command line: this process (and the runs it starts) keep
    their checkpoints there, as ``$ADV_TUI_CHECKPOINTS`` would."""
    given = _given(ctx, "checkpoints", checkpoints)
    if given:
        if not given.strip():
            raise UserError("--checkpoints needs a directory")
        os.environ[ENV_CHECKPOINTS] = given
