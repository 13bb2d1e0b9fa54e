"""How each claim is measured from catalog rows: :class:`Ctx` finds the run of each suite step (by
what the run *is*, whichever command made it) and reads its points, metrics and artifacts; the ``m_*``
functions turn those into the values of a claim's parts (``tui_adv.claims`` holds the claims, their
paper values and tolerances, and judges the values).
"""

from __future__ import annotations

from typing import Any, Callable

from .catalog.lookup import identity_fields
from .catalog.schema import Run
from .catalog.store import Store
from .config import Reading

Measure = Callable[..., dict[str, Any]]  # (ctx, reading=None) -> {part name: value, "_detail": ...}

class Ctx:
    """Catalog access for measurement functions: the run of each suite step, found by what it *is*.

    A step's run is the newest completed run with the step's experiment identity (its config without
    name, description, claims, experiment or profile, see :mod:`tui_adv.config.identity`): a run made
    by ``adv-tui run configs/softmax.toml`` fills P01 like the quick profile's softmax step does, and the
    standard profile finds the runs it shares with quick. Retrain and analysis steps are identified from
    the runs of their parents. A measure may only read the steps its claim declares (``Claim.reads``)."""

    def __init__(self, store: Store, profile: str):
        from .reproduce import _steps

        self.store, self.profile = store, profile
        # which run is the newest of each experiment, from one light query; rows are read when used
        self._by_identity: dict[str, int] = {}
        self._by_key: dict[str, int] = {}
        for rid, key, experiment, run_profile in store.run_keys():
            if key:
                self._by_identity.setdefault(key, rid)
            if run_profile == profile:
                self._by_key.setdefault(experiment, rid)
        self._rows: dict[int, Run] = {}
        self.steps = {st.key: st for st in _steps(profile)}
        self._resolved: dict[str, Run | None] = {}
        self._sweeps: dict[int, list[dict]] = {}
        self.used: list[int] = []
        self.allowed: set[str] | None = None
        self.problems: list[str] = []

    # ------------------------------------------------------------------ finding a step's run
    def resolve(self, key: str) -> Run | None:
        if key in self._resolved:
            return self._resolved[key]
        from .reproduce import analysis_config_json, step_config

        step = self.steps.get(key)
        run = None
        if step is not None:
            try:
                if step.config:
                    run = self._newest(step_config(step, self.profile).to_json())
                elif step.retrain_of:
                    parent = self.resolve(step.retrain_of)
                    run = None if parent is None else self._newest(step_config(step, self.profile, parent).to_json())
                else:
                    parents = {role: self.resolve(k) for role, k in step.parents.items()}
                    if all(p is not None for p in parents.values()):
                        run = self._newest(analysis_config_json(step, parents))
            except Exception:  # noqa: BLE001 - a config the suite cannot build (edited file): fall back to the key
                run = None
        if run is None:
            run = self._row(self._by_key.get(key))
        self._resolved[key] = run
        return run

    def _newest(self, config_json: str) -> Run | None:
        """The newest completed run of the experiment ``config_json`` describes (as ``find_completed``)."""
        return self._row(self._by_identity.get(identity_fields(config_json)["identity"] or ""))

    def _row(self, run_id: int | None) -> Run | None:
        if run_id is None:
            return None
        if run_id not in self._rows:
            self._rows[run_id] = self.store.get_run(run_id)
        return self._rows[run_id]

    def _check(self, key: str) -> None:
        from .reproduce import step_reads

        if self.allowed is not None and not any(step_reads(a, [key]) for a in self.allowed):
            raise AssertionError(f"a measure read step {key!r}, which its claim does not declare in reads")

    def run(self, key: str) -> Run | None:
        self._check(key)
        r = self.resolve(key)
        if r is not None:
            self.used.append(int(r.id))
            self._sane(key, r)
        return r

    def seeds(self, prefix: str) -> list[Run]:
        """The run of every seed of a step: the profile's seed steps, and any other seed the profile
        recorded under that prefix (more seeds than the profile makes)."""
        out = []
        keys = {k for k in self.steps if k.startswith(prefix + "@")} | {k for k in self._by_key if k.startswith(prefix + "@")}
        for k in sorted(keys):
            r = self.run(k)
            if r is not None:
                out.append(r)
        return out

    def _sane(self, key: str, run: Run) -> None:
        """A collapsed or badly trained model never passes a claim: its clean error must be within the
        bound of its family (the paper's value is far below each bound)."""
        bound = clean_error_bound(key)
        if bound is None:
            return
        p = self.point(run, 0.0) or next((q for sw in self.sweeps(run) if sw["labels"] == "true" for q in sw["points"] if q["epsilon"] == 0), None)
        if p is None:
            return
        if p["error"] > bound:
            self.problems.append(f"run {run.id} ({key}) is degenerate: clean error {100 * p['error']:.2f}% > {100 * bound:g}%, far off its target")

    # ------------------------------------------------------------------ reading a run
    def summary(self, run: Run | None) -> dict:
        return {} if run is None else run.summary()

    def sweeps(self, run: Run) -> list[dict]:
        rid = int(run.id)
        if rid not in self._sweeps:
            self._sweeps[rid] = self.store.sweeps(rid)
        return self._sweeps[rid]

    def point(self, run: Run | None, eps: float, labels: str = "true", reading: "Reading | None" = None) -> dict | None:
        """The point at ``eps`` of the run's sweep with that reading (default: eval-mode gradient,
        clipped, training cost; the mean over mask draws for a dropout reading)."""
        if run is None:
            return None
        g, clip, cost = ("eval", True, "train") if reading is None else (reading.gradient, reading.clip, reading.cost)
        for sw in self.sweeps(run):
            if sw["labels"] == labels and sw.get("gradient", "eval") == g and bool(sw.get("clip", True)) == clip and sw.get("cost", "train") == cost:
                for p in sw["points"]:
                    if abs(p["epsilon"] - eps) < 1e-9:
                        return p
        return None

    def metric(self, run: Run | None, key: str) -> float | None:
        if run is None:
            return None
        return self.store.latest_metrics(int(run.id)).get(key)


def clean_error_bound(key: str) -> float | None:
    """The largest clean test error a sound model of a step can have (None: not checked)."""
    base = key.split("@")[0]
    if base.startswith("transfer") or base in ("ensemble", "rubbish", "logit_curve", "weights", "softmax_augment_predicted"):
        return None
    if base == "maxout_l1":
        return None  # P05 is about the L1 model failing to fit
    if base.startswith("maxout"):
        return 0.05
    if base.startswith("logreg"):
        return 0.05
    if base in ("softmax", "softmax_augment", "softmax_analytic"):
        return 0.15
    if base == "rbf":
        return 0.40
    if base == "inception":
        return 0.15
    return 0.5


def pct(v: float | None) -> float | None:
    return None if v is None else 100.0 * v


def _get(d: dict | None, k: str) -> Any:
    return None if d is None else d.get(k)


def m_fgsm(key: str, eps: float = 0.25, conf: str = "mean_confidence_wrong") -> Measure:
    """FGSM error and confidence on mistakes (the paper's "confidence": of the wrong class) at ε."""

    def f(c: Ctx, reading: Reading | None = None) -> dict:
        p = c.point(c.run(key), eps, reading=reading)
        return {"error": pct(_get(p, "error")), "confidence": pct(_get(p, conf))}

    return f


def m_p03(c: Ctx, reading: Reading | None = None) -> dict:
    p = c.point(c.run("logreg_3v7"), 0.0)
    return {"clean error": pct(_get(p, "error"))}


def m_p04(c: Ctx, reading: Reading | None = None) -> dict:
    p = c.point(c.run("logreg_3v7"), 0.25)
    return {"error": pct(_get(p, "error"))}


def m_p05(c: Ctx, reading: Reading | None = None) -> dict:
    return {"train error": pct(c.metric(c.run("maxout_l1"), "train_error"))}


def m_p06(c: Ctx, reading: Reading | None = None) -> dict:
    naive, adv = c.point(c.run("maxout"), 0.0), c.point(c.run("maxout_adv"), 0.0)
    return {"naive clean error": pct(_get(naive, "error")), "adversarial clean error": pct(_get(adv, "error"))}


def m_p07(c: Ctx, reading: Reading | None = None) -> dict:
    return {"clean error": pct(_get(c.point(c.run("maxout1600"), 0.0), "error"))}


def _seed_mean(vals: list[float | None]) -> tuple[float | None, float | None, int]:
    v = [x for x in vals if x is not None]
    if not v:
        return None, None, 0
    return sum(v) / len(v), ((max(v) - min(v)) / 2 if len(v) > 1 else None), len(v)


def m_p08(c: Ctx, reading: Reading | None = None) -> dict:
    mean, spread, n = _seed_mean([pct(_get(c.point(r, 0.0), "error")) for r in c.seeds("maxout1600_adv")])
    return {"mean clean error": mean, "_spread": spread, "_n": n}


def m_p09(c: Ctx, reading: Reading | None = None) -> dict:
    """Naive: the 240-unit maxout (P02's model). Adversarial: the 1600-unit adversarially early-stopped,
    retrained model, mean over its seeds (the paper's "this same kind of model")."""
    naive = c.point(c.run("maxout"), 0.25, reading=reading)
    mean, spread, n = _seed_mean([pct(_get(c.point(r, 0.25, reading=reading), "error")) for r in c.seeds("maxout1600_adv")])
    return {"naive error": pct(_get(naive, "error")), "adversarial error": mean, "_adversarial_spread": spread, "_seeds": n}


def m_p10(c: Ctx, reading: Reading | None = None) -> dict:
    mean, spread, n = _seed_mean([pct(_get(c.point(r, 0.25, reading=reading), "mean_confidence_wrong")) for r in c.seeds("maxout1600_adv")])
    return {"confidence on mistakes": mean, "_spread": spread, "_seeds": n}


def m_transfer_seeds(prefix: str) -> Measure:
    """P11/P12: a transfer analysis per seed of the 1600-unit adversarial model; the mean ± spread."""

    def f(c: Ctx, reading: Reading | None = None) -> dict:
        mean, spread, n = _seed_mean([pct(c.summary(r).get("target_error")) for r in c.seeds(prefix)])
        return {"error": mean, "_spread": spread, "_seeds": n}

    return f


def m_noise(key: str) -> Measure:
    """P13/P14: FGSM on a noise-trained maxout, with the naive maxout's error for the side check."""
    fgsm = m_fgsm(key)

    def f(c: Ctx, reading: Reading | None = None) -> dict:
        return {**fgsm(c, reading), "_naive": pct(_get(c.point(c.run("maxout"), 0.25, reading=reading), "error"))}

    return f


def m_p15(c: Ctx, reading: Reading | None = None) -> dict:
    run = c.run("rbf")
    p, p0 = c.point(run, 0.25, reading=reading), c.point(run, 0.0, reading=reading)
    return {
        "error": pct(_get(p, "error")),
        "confidence on mistakes": pct(_get(p, "mean_confidence_wrong")),
        "clean mean confidence": pct(_get(p0, "mean_confidence")),
    }


def m_p16(c: Ctx, reading: Reading | None = None) -> dict:
    sm, rb = c.summary(c.run("transfer_maxout_to_softmax")), c.summary(c.run("transfer_maxout_to_rbf"))
    return {"softmax": pct(sm.get("agree_on_source_mistakes")), "RBF": pct(rb.get("agree_on_source_mistakes"))}


def m_p17(c: Ctx, reading: Reading | None = None) -> dict:
    sm, rb = c.summary(c.run("transfer_maxout_to_softmax")), c.summary(c.run("transfer_maxout_to_rbf"))
    return {"softmax": pct(sm.get("agree_when_both_wrong")), "RBF": pct(rb.get("agree_when_both_wrong"))}


def m_p18(c: Ctx, reading: Reading | None = None) -> dict:
    s = c.summary(c.run("ensemble"))
    if reading is not None and reading.name != "eval+clip":
        s = (s.get("readings") or {}).get(reading.name) or {}
    return {"crafted on ensemble": pct(s.get("error_crafted_on_ensemble")), "crafted on one member": pct(s.get("error_crafted_on_member"))}


def m_p19(c: Ctx, reading: Reading | None = None) -> dict:
    s = c.summary(c.run("rubbish"))
    out = {}
    for role in ("maxout", "softmax", "rbf", "maxout_sigmoid"):
        r = s.get(role) or {}
        out[f"{role} error"] = pct(r.get("error"))
        out[f"{role} confidence"] = pct(r.get("mean_confidence_fooled"))
    return out


def m_p20(c: Ctx, reading: Reading | None = None) -> dict:
    s = c.summary(c.run("logit_curve"))
    if not s:
        return {"wrong class wins for |ε| ≥ 1": None, "piecewise linear (R² ≥ .9)": None}
    return {"wrong class wins for |ε| ≥ 1": pct(s.get("wrong_fraction_abs_eps_ge_1")), "piecewise linear (R² ≥ .9)": s.get("mean_r2_piecewise")}


def m_p21(c: Ctx, reading: Reading | None = None) -> dict:
    s = c.summary(c.run("weights"))
    naive, adv = s.get("maxout_localization"), s.get("maxout_adv_localization")
    return {
        "adversarial filters more localized": None if naive is None or adv is None else adv > naive,
        "_naive": naive,
        "_adv": adv,
    }


def m_s01(c: Ctx, reading: Reading | None = None) -> dict:
    p = c.point(c.run("inception"), 0.0)
    return {"accuracy": pct(_get(p, "accuracy"))}


def m_s02(c: Ctx, reading: Reading | None = None) -> dict:
    run = c.run("inception")
    p1, p2, p3 = c.point(run, 0.1), c.point(run, 0.2), c.point(run, 0.3)
    return {"accuracy at ε=.1": pct(_get(p1, "accuracy")), "accuracy at ε=.3": pct(_get(p3, "accuracy")), "confidence on mistakes at ε=.2": pct(_get(p2, "mean_confidence_wrong"))}


def m_s03(c: Ctx, reading: Reading | None = None) -> dict:
    return {"accuracy at ε=.3": pct(_get(c.point(c.run("softmax_analytic"), 0.3), "accuracy"))}


def m_s04(c: Ctx, reading: Reading | None = None) -> dict:
    run = c.run("softmax_augment")
    lo, hi = c.point(run, 0.1), c.point(run, 0.3)
    pred = c.run("softmax_augment_predicted")
    plo, phi = c.point(pred, 0.1, "predicted"), c.point(pred, 0.3, "predicted")
    rises = None if lo is None or hi is None else hi["accuracy"] > lo["accuracy"]
    rises_pred = None if plo is None or phi is None else phi["accuracy"] > plo["accuracy"]
    return {
        "accuracy rises from ε=.1 to .3 (true labels)": rises,
        "_acc_true": (pct(_get(lo, "accuracy")), pct(_get(hi, "accuracy"))),
        "_acc_pred": (pct(_get(plo, "accuracy")), pct(_get(phi, "accuracy"))),
        "_rises_pred": rises_pred,
    }


def m_s05(c: Ctx, reading: Reading | None = None) -> dict:
    naive, adv = c.run("logreg_0v1"), c.run("logreg_0v1_analytic")
    return {
        "analytic at ε=.3": pct(_get(c.point(adv, 0.3), "accuracy")),
        "naive at ε=.3": pct(_get(c.point(naive, 0.3), "accuracy")),
        "analytic at ε=.5": pct(_get(c.point(adv, 0.5), "accuracy")),
        "naive at ε=.5": pct(_get(c.point(naive, 0.5), "accuracy")),
        "_analytic_clean": pct(_get(c.point(adv, 0.0), "accuracy")),
    }


def m_s06(c: Ctx, reading: Reading | None = None) -> dict:
    naive, adv = c.point(c.run("maxout"), 0.0), c.point(c.run("maxout_adv"), 0.0)
    return {"naive error": pct(_get(naive, "error")), "adversarial error": pct(_get(adv, "error"))}


def m_s07(c: Ctx, reading: Reading | None = None) -> dict:
    aug, naive = c.point(c.run("maxout_augment"), 0.25), c.point(c.run("maxout"), 0.25)
    return {
        "augmented FGSM error below naive": None if aug is None or naive is None else aug["error"] < naive["error"],
        "_aug": pct(_get(aug, "error")),
        "_naive": pct(_get(naive, "error")),
    }
