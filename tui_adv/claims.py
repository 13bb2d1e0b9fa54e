"""Every claim of ``claims.md`` in code: the paper's value, the tolerance of a PASS, and how it is
measured from catalog rows of the reproduction suite (``tui_adv.reproduce``).

A claim has one or more *parts*. A numeric part passes when |measured − paper| ≤ tolerance (in the
part's unit); a threshold part when the measured value is on the stated side; a qualitative part when
its check holds. The claim PASSes when every part passes, is NOT RUN when a run it needs is missing.
Where a claim compares models (naive ≫ adversarially trained, noise ≈ naive, ...), ``direction`` says
whether the comparison lands on the paper's side, whatever the magnitudes.

Tolerances (percentage points unless said), and why:
- saturated FGSM errors of linear models (P01, P04): 2 — seed-to-seed spread is < .5, the paper's
  optimiser settings are not published;
- clean error of linear models (P03): .5 — one 3-vs-7 test image is .05;
- maxout clean errors (P06, P07, P08): .15 — the paper's own 5 seeds spread over .06 (P08);
- maxout FGSM errors and transfer rates (P02, P09, P11–P14, P18): 5 — public reproductions vary by a
  few points with training length;
- confidences (P01, P02, P10, P13–P15, P19): 10 — they follow the weights' norm, which training length
  and weight decay set and the paper does not report;
- agreement rates (P16, P17) and the seed's numbers (S01–S06): 10 — read off figures or small studies.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .catalog.schema import Run
from .catalog.store import Store
from .config import Reading


@dataclass
class Part:
    name: str
    paper: float | str
    tol: float | None = None  # numeric: |m − paper| ≤ tol
    unit: str = "%"
    kind: str = "abs"  # abs | min (m ≥ paper) | max (m ≤ paper) | check (bool)

    def verdict(self, measured: Any) -> bool | None:
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            return None
        if self.kind == "check":
            return bool(measured)
        if self.kind == "min":
            return measured >= self.paper
        if self.kind == "max":
            return measured <= self.paper
        return abs(measured - self.paper) <= (self.tol or 0) + 1e-9


@dataclass
class Result:
    id: str
    title: str
    profile: str | None
    paper: str
    measured: str
    verdict: str  # PASS | FAIL | NOT RUN
    direction: str | None  # "yes" / "no" / None (no comparison)
    runs: list[int]
    parts: list[dict] = field(default_factory=list)
    note: str = ""
    readings: list[dict] = field(default_factory=list)  # the protocol matrix: every reading's measurement
    reading: str | None = None  # the headline's reading
    problems: list[str] = field(default_factory=list)  # degenerate models among the runs read

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "profile": self.profile,
            "paper": self.paper,
            "measured": self.measured,
            "verdict": self.verdict,
            "direction": self.direction,
            "runs": self.runs,
            "parts": self.parts,
            "note": self.note,
            "reading": self.reading,
            "readings": self.readings,
            "problems": self.problems,
        }


class Ctx:
    """Catalog access for measurement functions: the run of each suite step, found by what it *is*.

    A step's run is the newest completed run with the step's experiment identity (its config without
    name, description, claims, experiment or profile, see :func:`tui_adv.reproduce.identity`): a run made
    by ``adv-tui run configs/softmax.toml`` fills P01 like the quick profile's softmax step does, and the
    standard profile finds the runs it shares with quick. Retrain and analysis steps are identified from
    the runs of their parents. A measure may only read the steps its claim declares (``Claim.reads``)."""

    def __init__(self, store: Store, profile: str):
        from .reproduce import _steps, identity

        self.store, self.profile = store, profile
        self._by_identity: dict[str, Run] = {}
        self._by_key: dict[str, Run] = {}
        for r in store.list_runs(status=["completed"]):  # newest first: the first of each wins
            self._by_identity.setdefault(identity(r.config_json), r)
            if r.profile == profile:
                self._by_key.setdefault(r.experiment, r)
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
        from .reproduce import analysis_config_json, identity, step_config

        step = self.steps.get(key)
        run = None
        if step is not None:
            try:
                if step.config:
                    run = self._by_identity.get(identity(step_config(step, self.profile).to_json()))
                elif step.retrain_of:
                    parent = self.resolve(step.retrain_of)
                    run = None if parent is None else self._by_identity.get(identity(step_config(step, self.profile, parent).to_json()))
                else:
                    parents = {role: self.resolve(k) for role, k in step.parents.items()}
                    if all(p is not None for p in parents.values()):
                        run = self._by_identity.get(identity(analysis_config_json(step, parents)))
            except Exception:  # noqa: BLE001 - a config the suite cannot build (edited file): fall back to the key
                run = None
        if run is None:
            run = self._by_key.get(key)
        self._resolved[key] = run
        return run

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
        if run is None or not run.summary_json:
            return {}
        try:
            d = json.loads(run.summary_json)
        except ValueError:
            return {}
        return d if isinstance(d, dict) else {}

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


Measure = Callable[..., dict[str, Any]]  # (ctx, reading=None) -> {part name: value, "_detail": ...}

@dataclass
class Claim:
    id: str
    title: str
    parts: list[Part]
    measure: Measure
    direction: Callable[[dict[str, Any]], bool | None] | None = None
    note: str = ""
    reads: list[str] = field(default_factory=list)
    """The suite steps whose runs the measure reads (``key`` or ``key@*`` for every seed): the suite is
    derived from these, and the measure may read nothing else."""
    readings: list[Reading] | None = None
    """The protocol matrix: every reading of the attack is measured and shown; ``headline`` is the one
    the verdict uses (``headline_why`` says why)."""
    headline: Reading | None = None
    headline_why: str = ""


# The protocol matrix (../shared/paper/protocol.md): the attack choices the paper leaves unstated.
MAXOUT_READINGS = [Reading(gradient=g, clip=c) for g in ("eval", "dropout") for c in (True, False)]
RBF_READINGS = [Reading(cost=k, clip=c) for k in ("train", "true_class") for c in (True, False)]

# The reading each matrix claim's headline verdict uses, and why. Chosen from the evidence, not from
# which reading passes: see the discussion in REPRODUCTION.md for the measurements behind it.
HEADLINE = Reading(gradient="eval", clip=False)
HEADLINE_WHY = (
    "eval-mode gradient, unclipped: the one reading that lands on both of P02's numbers when the naive maxout is trained "
    "as long as the paper's (the standard profile, `adv-tui reproduce --profile standard`: the recipe for 250 epochs, best "
    "validation epoch 249, clean 1.13%: eval unclipped 90.52% error / 98.54% confidence on mistakes vs the paper's "
    "89.4% / 97.6%; eval clipped 78.77% / 96.64%; dropout gradient (3 mask draws) 60.02% / 91.40% clipped, 73.63% / "
    "96.14% unclipped); the paper never mentions clipping and its Fig. 4 is necessarily unclipped"
)
RBF_HEADLINE = Reading(cost="true_class", clip=True)
RBF_HEADLINE_WHY = (
    "−log p_y of the true class, clipped: the paper describes its RBF only through p(y|x) = exp(−(x−μ)ᵀβ(x−μ)) and never "
    "says how it was trained, so the cost it implies for a labelled example is −log p_y; the one-vs-rest loss is this "
    "project's training choice, not the paper's"
)


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


def _lt(a: str, b: str) -> Callable[[dict], bool | None]:
    return lambda m: None if m.get(a) is None or m.get(b) is None else m[a] < m[b]


def _noise_like_naive(m: dict) -> bool | None:
    # noise training does not buy robustness: FGSM error stays within 15 points of the naive model's
    if m.get("error") is None or m.get("_naive") is None:
        return None
    return abs(m["error"] - m["_naive"]) <= 15


def _naive_fooled(m: dict) -> bool | None:
    # the paper's side for a naively trained maxout: FGSM at ε=.25 fools it on most inputs
    v = m.get("error")
    return None if v is None else v >= 50


def _s05_side(m: dict) -> bool | None:
    # analytic beats naive at ε=.3, and not by collapsing: a near-constant predictor (clean accuracy
    # below 90% on 0 vs 1, where the naive model gets 99.9%) scores the majority share at every ε
    side = _lt("naive at ε=.3", "analytic at ε=.3")(m)
    clean = m.get("_analytic_clean")
    if side and clean is not None and clean < 90:
        return False
    return side


def _rbf_low_conf(m: dict) -> bool | None:
    v = m.get("confidence on mistakes")
    return None if v is None else v < 10


CLAIMS: list[Claim] = [
    Claim("P01", "FGSM on softmax regression, ε=.25", [Part("error", 99.9, 2), Part("confidence", 79.3, 10)], m_fgsm("softmax"), reads=['softmax']),
    Claim("P02", "FGSM on naive maxout, ε=.25", [Part("error", 89.4, 5), Part("confidence", 97.6, 10)], m_fgsm("maxout"), _naive_fooled, readings=MAXOUT_READINGS, headline=HEADLINE, headline_why=HEADLINE_WHY, reads=['maxout']),
    Claim("P03", "Logistic regression 3 vs 7, clean", [Part("clean error", 1.6, 0.5)], m_p03, reads=['logreg_3v7']),
    Claim("P04", "Logistic regression 3 vs 7, FGSM ε=.25", [Part("error", 99.0, 2)], m_p04, reads=['logreg_3v7']),
    Claim("P05", "L1 decay .0025 on maxout's first layer", [Part("train error", 5.0, kind="min")], m_p05, reads=['maxout_l1']),
    Claim("P06", "Adversarial training lowers maxout clean error", [Part("naive clean error", 0.94, 0.15), Part("adversarial clean error", 0.84, 0.15)], m_p06,
          _lt("adversarial clean error", "naive clean error"), reads=['maxout', 'maxout_adv']),
    Claim("P07", "Maxout 1600 units, naive, clean", [Part("clean error", 1.14, 0.15)], m_p07, reads=['maxout1600']),
    Claim("P08", "Maxout 1600, adversarial, early stop on adv. val., 5 seeds", [Part("mean clean error", 0.782, 0.15)], m_p08, reads=['maxout1600_adv@*']),
    Claim("P09", "FGSM error: naive vs adversarially trained maxout", [Part("naive error", 89.4, 5), Part("adversarial error", 17.9, 5)], m_p09,
          _lt("adversarial error", "naive error"), readings=MAXOUT_READINGS, headline=HEADLINE, headline_why=HEADLINE_WHY, reads=['maxout', 'maxout1600_adv@*']),
    Claim("P10", "Adv.-trained maxout: confidence on FGSM mistakes", [Part("confidence on mistakes", 81.4, 10)], m_p10, reads=['maxout1600_adv@*']),
    Claim("P11", "Transfer naive → adversarially trained", [Part("error", 19.6, 5)], m_transfer_seeds("transfer_naive_to_adv"), reads=['transfer_naive_to_adv@*']),
    Claim("P12", "Transfer adversarially trained → naive", [Part("error", 40.9, 5)], m_transfer_seeds("transfer_adv_to_naive"), reads=['transfer_adv_to_naive@*']),
    Claim("P13", "Control: ±ε sign-noise training, FGSM", [Part("error", 86.2, 5), Part("confidence", 97.3, 10)], m_noise("maxout_sign_noise"), _noise_like_naive, readings=MAXOUT_READINGS, headline=HEADLINE, headline_why=HEADLINE_WHY, reads=['maxout_sign_noise', 'maxout']),
    Claim("P14", "Control: U(−ε,ε) noise training, FGSM", [Part("error", 90.4, 5), Part("confidence", 97.8, 10)], m_noise("maxout_uniform_noise"), _noise_like_naive, readings=MAXOUT_READINGS, headline=HEADLINE, headline_why=HEADLINE_WHY, reads=['maxout_uniform_noise', 'maxout']),
    Claim("P15", "Shallow RBF network, FGSM ε=.25", [Part("error", 55.4, 10), Part("confidence on mistakes", 1.2, 10), Part("clean mean confidence", 60.6, 10)], m_p15,
          _rbf_low_conf, readings=RBF_READINGS, headline=RBF_HEADLINE, headline_why=RBF_HEADLINE_WHY, reads=['rbf']),
    Claim("P16", "Maxout's FGSM mistakes: others predict the same class", [Part("softmax", 54.6, 10), Part("RBF", 16.0, 10)], m_p16, _lt("RBF", "softmax"), reads=['transfer_maxout_to_softmax', 'transfer_maxout_to_rbf']),
    Claim("P17", "Same, where the other model also errs", [Part("softmax", 84.6, 10), Part("RBF", 54.3, 10)], m_p17, _lt("RBF", "softmax"), reads=['transfer_maxout_to_softmax', 'transfer_maxout_to_rbf']),
    Claim("P18", "Ensemble of 12 maxouts, FGSM ε=.25", [Part("crafted on ensemble", 91.1, 5), Part("crafted on one member", 87.9, 5)], m_p18, readings=MAXOUT_READINGS, headline=HEADLINE, headline_why=HEADLINE_WHY, reads=['ensemble']),
    Claim("P19", "Rubbish class: N(0, I) samples with some p > .5",
          [Part("maxout error", 98.35, 5), Part("maxout confidence", 92.8, 10), Part("softmax error", 59.8, 10), Part("softmax confidence", 70.8, 10),
           Part("rbf error", 0.0, 1), Part("maxout_sigmoid error", 68.0, 10), Part("maxout_sigmoid confidence", 87.9, 10)], m_p19, reads=['rubbish']),
    Claim("P20", "Logits along one FGSM direction, ε ∈ [−15, 15]",
          [Part("wrong class wins for |ε| ≥ 1", 50.0, kind="min"), Part("piecewise linear (R² ≥ .9)", 0.9, unit="", kind="min")], m_p20, reads=['logit_curve']),
    Claim("P21", "Weights: adversarially trained filters more localized", [Part("adversarial filters more localized", "yes", kind="check")], m_p21, reads=['weights']),
    Claim("S01", "Seed: Inception-style CNN accuracy", [Part("accuracy", 98.0, 1)], m_s01, reads=['inception']),
    Claim("S02", "Seed: FGSM on the CNN",
          [Part("accuracy at ε=.1", 45.0, 10), Part("accuracy at ε=.3", 20.0, 10), Part("confidence on mistakes at ε=.2", 90.0, kind="min")], m_s02, reads=['inception']),
    Claim("S03", "Seed: softmax, analytic adversarial objective", [Part("accuracy at ε=.3", 56.0, 10)], m_s03, reads=['softmax_analytic']),
    Claim("S04", "Seed: softmax retrained on FGSM examples 1:1", [Part("accuracy rises from ε=.1 to .3 (true labels)", "yes", kind="check")], m_s04, reads=['softmax_augment', 'softmax_augment_predicted']),
    Claim("S05", "Seed: logistic 0 vs 1, analytic adversarial training",
          [Part("analytic at ε=.3", 98.0, 10), Part("naive at ε=.3", 80.0, 10), Part("analytic at ε=.5", 63.0, 10), Part("naive at ε=.5", 14.0, 10)], m_s05,
          _s05_side, reads=['logreg_0v1', 'logreg_0v1_analytic']),
    Claim("S06", "Seed: maxout with early stopping", [Part("naive error", 1.7, 0.5), Part("adversarial error", 1.35, 0.5)], m_s06,
          _lt("adversarial error", "naive error"), reads=['maxout', 'maxout_adv']),
    Claim("S07", "Seed: maxout retrained on FGSM-augmented data", [Part("augmented FGSM error below naive", "yes", kind="check")], m_s07, reads=['maxout_augment', 'maxout']),
]

OUT_OF_REACH = {
    "GoogLeNet/ImageNet (Fig. 1)": "needs ImageNet and GoogLeNet weights, neither is on this machine",
    "CIFAR-10 conv maxout": "needs CIFAR-10, not on this machine",
}


def _fmt(v: Any, unit: str) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}{unit}" if unit == "" else f"{v:.2f}{unit}"
    return str(v)


def _parts(claim: Claim, m: dict) -> tuple[list[dict], str]:
    parts, verdicts = [], []
    for p in claim.parts:
        val = m.get(p.name)
        v = p.verdict(val)
        verdicts.append(v)
        parts.append({"name": p.name, "paper": p.paper, "measured": val, "tolerance": p.tol, "kind": p.kind, "pass": v})
    if any(v is None for v in verdicts):
        return parts, "NOT RUN"
    return parts, "PASS" if all(verdicts) else "FAIL"


def _distance(claim: Claim, m: dict) -> float | None:
    """The largest |measured − paper| over the claim's numeric parts, in their units."""
    d = [abs(m[p.name] - float(p.paper)) for p in claim.parts if p.kind == "abs" and isinstance(m.get(p.name), (int, float))]
    return max(d) if d else None


def evaluate_claim(claim: Claim, ctx: Ctx) -> Result:
    ctx.used = []
    ctx.problems = []
    ctx.allowed = set(claim.reads)
    readings: list[dict] = []
    try:
        m = None
        for rd in claim.readings or []:
            rm = claim.measure(ctx, rd)
            if claim.headline is not None and rd.key == claim.headline.key:
                m = rm  # the headline is one of the readings: measured once
            rparts, rverdict = _parts(claim, rm)
            readings.append({
                "gradient": rd.gradient, "clip": rd.clip, "cost": rd.cost, "reading": rd.name,
                "headline": claim.headline is not None and rd.key == claim.headline.key,
                "measured": {p["name"]: p["measured"] for p in rparts},
                "distance": _distance(claim, rm),
                "verdict": rverdict if not (ctx.problems and rverdict == "PASS") else "FAIL",
            })
        if m is None:
            m = claim.measure(ctx, claim.headline) if claim.headline is not None else claim.measure(ctx)
    finally:
        ctx.allowed = None
    parts, verdict = _parts(claim, m)
    problems = list(dict.fromkeys(ctx.problems))
    if problems and verdict == "PASS":
        verdict = "FAIL"  # a collapsed or badly trained model never passes
    d = claim.direction(m) if claim.direction and verdict != "NOT RUN" else None
    spread = m.get("_spread")

    def paper_text(p: Part) -> str:
        if p.kind == "check":
            return f"{p.name}: {p.paper}"
        rel = {"min": "≥ ", "max": "≤ "}.get(p.kind, "")
        return f"{p.name} {rel}{_fmt(float(p.paper), p.unit)}" + (f" ±{p.tol:g}" if p.kind == "abs" and p.tol is not None else "")

    multi = len(claim.parts) > 1

    def measured_text(p: Part) -> str:
        val = m.get(p.name)
        mark = ""
        if multi and verdict != "NOT RUN":
            mark = " ✔" if p.verdict(val) else " ✘"
        if p.kind == "check":
            return f"{p.name}: {_fmt(val, '')}{mark}"
        s = f"{p.name} {_fmt(val, p.unit)}{mark}"
        if spread is not None and not multi:
            s += f" ± {spread:.2f} ({m.get('_n') or m.get('_seeds')} seeds)"
        elif p.name == "adversarial error" and m.get("_adversarial_spread") is not None:
            s += f" ± {m['_adversarial_spread']:.2f} ({m.get('_seeds')} seeds)"
        return s

    extra = {k: v for k, v in m.items() if k.startswith("_") and k not in ("_spread", "_n")}
    notes = [claim.note] if claim.note else []
    if claim.headline is not None:
        notes.append(f"headline reading {claim.headline.name}: {claim.headline_why}")
    notes += problems
    if verdict == "NOT RUN":
        notes.append(f"fill it with: adv-tui reproduce --profile {ctx.profile} --only {claim.id}")
    return Result(
        id=claim.id,
        title=claim.title,
        profile=ctx.profile,
        paper="; ".join(paper_text(p) for p in claim.parts),
        measured="; ".join(measured_text(p) for p in claim.parts),
        verdict=verdict,
        direction=None if d is None else ("yes" if d else "no"),
        runs=sorted(set(ctx.used)),
        parts=parts + ([{"name": "details", "value": extra}] if extra else []),
        note=" · ".join(notes),
        readings=readings,
        reading=claim.headline.name if claim.headline is not None else None,
        problems=problems,
    )


def reading_text(reading: dict) -> str:
    """e.g. "eval gradient, unclipped" or "true-class cost, clipped"."""
    parts = [f"{reading['gradient']} gradient"] if reading["cost"] == "train" or reading["gradient"] != "eval" else []
    if reading["cost"] != "train":
        parts.append(f"{reading['cost'].replace('_', '-')} cost")
    parts.append("clipped" if reading["clip"] else "unclipped")
    return ", ".join(parts)


def matrix_rows(results: list[Result]) -> list[tuple[str, str, str, str, str, bool]]:
    """(claim, reading, measured, distance to the paper, verdict, is the headline) for every reading of
    every claim that has a protocol matrix."""
    rows = []
    for r in results:
        if r.verdict == "NOT RUN" or not r.readings:
            continue
        units = {p["name"]: "%" for p in r.parts if "kind" in p}
        for rd in r.readings:
            measured = "; ".join(f"{k} {_fmt(v, units.get(k, '%'))}" for k, v in rd["measured"].items())
            dist = "—" if rd["distance"] is None else f"{rd['distance']:.2f} pts"
            rows.append((r.id, reading_text(rd), measured, dist, rd["verdict"], bool(rd["headline"])))
    return rows


def scorecard(store: Store, profiles: list[str] | None = None) -> list[Result]:
    """One result per claim: for each claim the first profile in ``profiles`` (default paper, standard,
    then quick) that has its runs; NOT RUN (with the command that fills it) when none has."""
    from .reproduce import PROFILES

    order = profiles or ["paper", "standard", "quick"]
    for p in order:
        if p not in PROFILES:
            from .errors import UserError

            raise UserError(f"unknown profile {p!r}; choose one of {', '.join(PROFILES)}")
    ctxs = [Ctx(store, p) for p in order]
    out = []
    for claim in CLAIMS:
        best = None
        for ctx in ctxs:
            r = evaluate_claim(claim, ctx)
            best = r  # NOT RUN everywhere: the last (cheapest) profile's hint is shown
            if r.verdict != "NOT RUN":
                break
        if best is not None and best.verdict == "NOT RUN":
            best.profile = None
            best.measured = "—"
        out.append(best)
    return out
