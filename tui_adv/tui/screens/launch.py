"""Launch: pick a config, edit the common keys, start it as a separate headless process."""

from __future__ import annotations

import shlex

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from ...errors import UserError
from ...services.launch import ConfigInfo, check_data_dir, list_configs
from ..model import fmt_eps_list, gpu_hint, parse_eps_list
from ..widgets.footer import AppFooter

DEVICES = [("auto (GPU when present)", "auto"), ("cpu", "cpu"), ("cuda", "cuda")]


class LaunchScreen(Screen):
    HELP_TITLE = "Launch"
    FORM = True  # the app's one-letter keys (l c s /) do nothing here: letters belong to the form
    BINDINGS = [
        Binding("ctrl+s", "start", "Start run", priority=True),
        Binding("escape", "app.back", "Back"),
    ]
    HELP_EXTRA = (
        "Pick a config on the left (↑/↓), edit the fields (tab moves between them), then `ctrl+s` or "
        "the Start button. Only the keys you change become `--set` overrides; `extra --set` takes any "
        "other `key=value` pairs separated by spaces (e.g. `data.train_limit=2000`). The run is an "
        "`adv-tui run --headless` process: it goes on when you quit."
    )

    def __init__(self) -> None:
        super().__init__()
        self.configs: list[ConfigInfo] = []
        self.current: ConfigInfo | None = None
        self.data_ok: bool | None = None
        self._check_seq = 0  # the newest data check; answers of older ones are dropped

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Launch a run", "bold"), ("  pick a config · edit · ctrl+s starts it as a background process", "dim")), classes="topbar")
        with Horizontal(id="launch-body"):
            yield OptionList(id="launch-configs")
            with VerticalScroll(id="launch-form"):
                yield Static(id="launch-desc")
                with Grid(id="launch-grid"):
                    yield Label("epochs")
                    yield Input(compact=True, id="f-epochs", type="integer", placeholder="train.epochs")
                    yield Label("ε list")
                    yield Input(compact=True, id="f-eps", placeholder="sweep.epsilons, e.g. 0, .05, .1, .25")
                    yield Label("α")
                    yield Input(compact=True, id="f-alpha", type="number", placeholder="train.alpha (weight of the clean loss)")
                    yield Label("device")
                    yield Select(DEVICES, id="f-device", allow_blank=False, value="auto", compact=True)
                    yield Label("seed")
                    yield Input(compact=True, id="f-seed", type="integer", placeholder="seed")
                    yield Label("profile")
                    yield Input(compact=True, id="f-profile", placeholder="profile tag (optional)")
                    yield Label("extra --set")
                    yield Input(compact=True, id="f-extra", placeholder="key=value … e.g. data.train_limit=2000 data.test_limit=500")
                    yield Label("data dir")
                    yield Input(compact=True, id="f-data", placeholder="MNIST root (default $ADV_TUI_DATA, else the user cache)")
                    if self.app.ray_address:  # adv-tui --ray-address ADDR / $ADV_TUI_RAY_ADDRESS
                        yield Label("run on")
                        yield Select([("this machine (a background process)", "local"), (f"Ray at {self.app.ray_address}", "ray")],
                                     id="f-executor", allow_blank=False, value="local", compact=True)
                yield Static(id="launch-data", classes="dim")
                yield Static(id="launch-estimate", classes="dim")
                yield Static(id="launch-hint", classes="dim")
                yield Static(id="launch-cmd")
                yield Static(id="launch-error", classes="error")
                with Horizontal(classes="buttons"):
                    yield Button("Start (ctrl+s)", variant="primary", id="launch-start", compact=True)
        yield AppFooter()

    def on_mount(self) -> None:
        self.configs = list_configs(self.app.config_dirs)
        ol = self.query_one("#launch-configs", OptionList)
        for c in self.configs:
            label = Text(c.name, style="bold", no_wrap=True, overflow="ellipsis")
            if c.claims:
                claims = ",".join(c.claims[:3]) + ("…" if len(c.claims) > 3 else "")
                if len(c.name) + 2 + len(claims) <= 20:  # one line even in the narrow layout
                    label.append("  " + claims, style="dim")
            ol.add_option(Option(label, id=str(c.path)))
        ol.border_title = "configs"
        self.query_one("#launch-hint", Static).update(gpu_hint())
        self.query_one("#f-data", Input).value = self.app.data_dir or ""
        self._recheck(self.app.data_dir or "")
        if self.configs:
            # start on the README's job (softmax), else the first MNIST config: the list is alphabetical, and
            # opening on cifar10_conv_maxout would check a dataset most machines lack before anything else
            first = next((i for i, c in enumerate(self.configs) if c.name == "softmax"), None)
            if first is None:
                first = next((i for i, c in enumerate(self.configs) if c.dataset == "mnist"), 0)
            ol.highlighted = first
            ol.focus()
            self._select(self.configs[first])
        else:
            self.query_one("#launch-desc", Static).update(Text("no configs found in ./configs", style="red"))

    # ------------------------------------------------------------------------------------------ form
    @on(OptionList.OptionHighlighted, "#launch-configs")
    def _highlight(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index is not None and 0 <= event.option_index < len(self.configs):
            self._select(self.configs[event.option_index])

    @on(OptionList.OptionSelected, "#launch-configs")
    def _chosen(self, _event: OptionList.OptionSelected) -> None:
        self.query_one("#f-epochs", Input).focus()

    def _select(self, c: ConfigInfo) -> None:
        if self.current is c:
            return
        self.current = c
        if getattr(self, "_checked", None) not in (None, c.dataset):  # check the data the chosen config reads
            self._recheck(self.query_one("#f-data", Input).value.strip())
        desc = Text()
        desc.append(f"{c.name}", style="bold")
        desc.append(f"  {c.path.parent.name}/{c.path.name}\n", style="dim")
        if c.error:
            desc.append(c.error, style="red")
        else:
            desc.append(c.description or "(no description)")
            desc.append("\n")
            desc.append("claims ", style="dim")
            desc.append(", ".join(c.claims) or "—", style="bold")
            desc.append("  model ", style="dim")
            desc.append(c.model or "?")
            desc.append("  training ", style="dim")
            desc.append(c.mode)
        self.query_one("#launch-desc", Static).update(desc)
        self.query_one("#f-epochs", Input).value = "" if c.epochs is None else str(c.epochs)
        self.query_one("#f-eps", Input).value = fmt_eps_list(c.epsilons or [])
        self.query_one("#f-alpha", Input).value = "" if c.alpha is None else f"{c.alpha:g}"
        self.query_one("#f-device", Select).value = c.device if c.device in ("auto", "cpu", "cuda") else "auto"
        self.query_one("#f-seed", Input).value = str(c.seed)
        self.query_one("#f-profile", Input).value = c.profile or ""
        self.query_one("#f-extra", Input).value = ""
        self.query_one("#f-alpha", Input).disabled = c.mode in ("clean", "l1", "augment")
        self._preview()

    def _number(self, field: str, parse: type, what: str) -> int | float | None:
        """The parsed value of a number field; None when it is empty."""
        v = self.query_one(field, Input).value.strip()
        if not v:
            return None
        try:
            return parse(v)
        except ValueError:
            raise ValueError(f"{what}, got {v!r}") from None

    def overrides(self) -> tuple[list[str], str]:
        """The --set overrides for the fields that differ from the config, and the device.
        Raises ValueError with a readable message on bad input."""
        c = self.current
        if c is None:
            raise ValueError("pick a config first")
        out: list[str] = []
        epochs = self._number("#f-epochs", int, "epochs must be a whole number")
        if epochs is not None and epochs != c.epochs:
            out.append(f"train.epochs={epochs}")
        v = self.query_one("#f-eps", Input).value.strip()
        if v:
            eps = parse_eps_list(v)
            if eps != (c.epsilons or []):
                out.append("sweep.epsilons=[" + ", ".join(f"{e:g}" for e in eps) + "]")
        if not self.query_one("#f-alpha", Input).disabled:
            alpha = self._number("#f-alpha", float, "α must be a number in [0, 1]")
            if alpha is not None and alpha != c.alpha:
                out.append(f"train.alpha={alpha:g}")
        seed = self._number("#f-seed", int, "seed must be a whole number")
        if seed is not None and seed != c.seed:
            out.append(f"seed={seed}")
        v = self.query_one("#f-profile", Input).value.strip()
        if v and v != (c.profile or ""):
            out.append(f'profile="{v}"')
        extra = self.query_one("#f-extra", Input).value.strip()
        if extra:
            try:
                parts = shlex.split(extra)
            except ValueError as e:
                raise ValueError(f"extra --set: {e}") from None
            for p in parts:
                if "=" not in p:
                    raise ValueError(f"extra --set expects key=value, got {p!r}")
                out.append(p)
        device = str(self.query_one("#f-device", Select).value)
        return out, device

    def on_ray(self) -> bool:
        """Whether the run goes to the configured Ray cluster (the "run on" field, shown only then)."""
        found = self.query("#f-executor")
        return bool(self.app.ray_address and found and str(found.first(Select).value) == "ray")

    def _preview(self) -> None:
        err = self.query_one("#launch-error", Static)
        cmd = self.query_one("#launch-cmd", Static)
        try:
            overrides, device = self.overrides()
            if self.current is not None:
                from ...config import load_config

                cfg = load_config(self.current.path, overrides)  # live validation: a few ms (TOML + pydantic)
                self._estimate(cfg.to_json())
        except (ValueError, UserError) as e:
            err.update(str(e))
            return
        err.update("")
        if self.current is None:
            return
        parts = ["adv-tui", "run", f"{self.current.path.parent.name}/{self.current.path.name}", "--headless", "--device", device]
        data_dir = self.query_one("#f-data", Input).value.strip()
        if data_dir:
            parts += ["--data-dir", data_dir]
        for o in overrides:
            parts += ["--set", o]
        if self.on_ray():
            parts += ["--executor", "ray", "--ray-address", self.app.ray_address]
        cmd.update(Text.assemble(("$ ", "dim"), (" ".join(shlex.quote(p) for p in parts), "")))

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self, event) -> None:  # noqa: ANN001
        if getattr(event, "input", None) is not None and event.input.id == "f-data":
            self._recheck(event.value.strip())
        self._preview()

    # ------------------------------------------------------------------------------------------ data, estimate
    def _recheck(self, data_dir: str) -> None:
        """Check the dataset the current config reads (MNIST before one is chosen)."""
        self._checked = self.current.dataset if self.current is not None else "mnist"
        self._check_seq = self._check_seq + 1
        self._check_data(data_dir, self._checked, self._check_seq)

    @work(thread=True, exclusive=True, group="data-check", exit_on_error=False)
    def _check_data(self, data_dir: str, dataset: str = "mnist", seq: int = 0) -> None:
        """``adv-tui data`` for the directory in the field and the config's dataset, off the UI thread.

        A thread worker cannot be stopped, so a check that a newer one replaced still finishes: each
        carries its sequence number and ``_data_status`` drops the answers of replaced checks (else a
        slow CIFAR-10 check started on mount could overwrite the answer for the config chosen since)."""
        what = "MNIST" if dataset == "mnist" else dataset
        self.app.call_from_thread(self._data_status, Text(f"checking the {what} files…", style="dim"), None, seq)
        ok, line = check_data_dir(data_dir, dataset)
        if ok:  # "MNIST ok in ROOT: 60000 train, …": the counts (the root is the field's, or the default's)
            head, _sep, counts = line.partition(": ")
            title = head.partition(" ok in ")[0] or what
            text = Text(f"✓ {title} ok: {counts or head}", style="green")
        else:
            text = Text("✗ " + line.removeprefix("adv-tui: error: "), style="red")
        self.app.call_from_thread(self._data_status, text, ok, seq)

    def _data_status(self, text: Text, ok: bool | None, seq: int = 0) -> None:
        if seq != self._check_seq:
            return  # the answer of a check a newer one replaced
        self.data_ok = ok
        self.query_one("#launch-data", Static).update(text)

    @work(thread=True, exclusive=True, group="estimate", exit_on_error=False)
    def _estimate(self, config_json: str) -> None:
        from ..model import estimate_duration

        try:
            text = estimate_duration(self.app.store, config_json)
        except Exception as e:  # noqa: BLE001 - an estimate must never break the form
            text = f"no estimate ({type(e).__name__})"
        self.app.call_from_thread(self.query_one("#launch-estimate", Static).update, Text(text, style="dim"))

    @on(Input.Submitted)
    @on(Button.Pressed, "#launch-start")
    def action_start(self) -> None:
        err = self.query_one("#launch-error", Static)
        if self.current is None:
            err.update("pick a config first")
            return
        try:
            overrides, device = self.overrides()
            from ...config import load_config

            load_config(self.current.path, overrides)  # validate here: errors stay on this screen
        except ValueError as e:
            err.update(str(e))
            return
        except UserError as e:
            err.update(str(e))
            return
        err.update("")
        app = self.app
        data_dir = self.query_one("#f-data", Input).value.strip() or None
        ray = self.on_ray()
        app.pop_screen()
        app.launch_run(str(self.current.path), overrides, device, data_dir=data_dir, ray=ray)
