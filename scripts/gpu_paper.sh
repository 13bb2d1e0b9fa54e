#!/usr/bin/env bash
# scripts/gpu_paper.sh: the paper profile on the device machine (one GPU, no network), as ONE command that
# ends within BUDGET_S seconds (default 540 s, inside the device tool's 10-minute limit):
#
#   0. env       python and torch versions, the GPU, nvidia-smi                            -> $OUT/env.txt
#   1. setup     a venv that sees the machine's torch, our other dependencies installed offline (--no-index)
#                from .gpu-wheels/, adv-tui itself editable (--no-deps); reused by a second call
#   2. tests     python -m pytest -q -m cuda on the test files that carry @pytest.mark.cuda -> $OUT/tests.log
#   2b. bench    benchmarks/epoch.py: per-epoch time of each model eager / graphed / stacked, and the FLOP
#                floor (BENCH_S seconds at most; 0 skips it; default 120 on cuda, 0 on cpu)  -> $OUT/epoch.json
#   3. plan      adv-tui reproduce --plan (steps, time estimates)                           -> $OUT/plan.txt
#   4. reproduce adv-tui reproduce --headless --order shortest until the budget's end (the cheapest steps first,
#                so a budget that ends inside the 1600-unit networks has scored every other claim), then
#                stopped with SIGINT (the running steps end `cancelled`, keeping their last checkpoint, at
#                most about 30 s old on a GPU; the next call continues them from it, a step stopped before its
#                first checkpoint starts again)                                          -> $OUT/reproduce.log
#   5. report    adv-tui report --markdown, a copy of the catalog (runs list --json for the summary line)
#                -> $OUT/report.md, $OUT/PROFILE.db (.gz when over 15 MiB); $OUT/timings.json
#
# $OUT gets those 8 files and nothing else (the device tool returns at most 8, 16 MiB each). The catalog,
# the checkpoints (can be large), the venv and the MNIST cache live in STATE (default .gpu-state/ in the
# repo, git-ignored), which a warm device machine keeps between calls while $OUT is emptied: call the script
# again and `reproduce` reuses the finished steps and continues the stopped ones from their checkpoints.
# A fresh machine starts from an empty catalog.
#
# Prepare here first (network to PyPI):  scripts/gpu_wheels.sh   (fills .gpu-wheels/ and .gpu-data/)
# On the device (device tool `run`, carry [".gpu-wheels", ".gpu-data"], timeout_s 600):
#   bash scripts/gpu_paper.sh
# Rehearsal on a CPU machine, offline (unshare -n): the Debian python as the base (few packages, like the
# device's), the dev venv lending only torch, torchvision and what they require (as the device's python3 does):
#   unshare -n env OUT=/tmp/gpu_rehearsal STATE=/tmp/gpu_state DEVICE=cpu PROFILE=quick ONLY=P01,P03 BUDGET_S=300 \
#     PY=/usr/bin/python3.11 TORCH_FROM=$PWD/.venv bash scripts/gpu_paper.sh
#
# Settings (environment):
#   OUT          where the results go (the device tool sets it)
#   DEVICE       cuda (default; asserts torch.cuda.is_available()) | cpu (rehearsal)
#   PROFILE      paper (default) | standard | quick          ONLY  claim ids for --only, e.g. P01,P03
#   JOBS         reproduce --jobs (default 4 on cuda, 1 on cpu)
#   BENCH_S      seconds for benchmarks/epoch.py (2b; 0 skips it); BENCH_ARGS more of its options (e.g. --train-size 20000)
#   ORDER        reproduce --order (default shortest; suite: the suite's order)
#   STACK        1: reproduce --stack (the steps that differ only by seed, the 12 ensemble members, trained as
#                one stacked model; default 1 on cuda, 0 on cpu)
#   BUDGET_S     the whole script's wall-clock budget (540)
#   REPORT_RESERVE_S  kept for report + catalog copy after reproduce (40); STOP_GRACE_S: how long a stopped
#                reproduce may take to end its steps and print its scorecard before it is killed (40)
#   TESTS_TIMEOUT_S (150), PLAN_TIMEOUT_S (90), SETUP_TIMEOUT_S (240)
#   PY           the python holding torch (default python3: on the device the image's /opt/torch/.venv one)
#   TORCH_FROM   where torch comes from when PY has none: a venv (its torch + torchvision and what they
#                require are linked into STATE/torch-site) or a site-packages dir holding torch/
#   STATE, WHEELS (.gpu-wheels), DATA (.gpu-data if it holds MNIST, else $ADV_TUI_DATA)
#   STOP_ON_TEST_FAILURE=1  skip the reproduce when the CUDA tests fail (default: run it, exit 1 at the end)
#   MANUAL_VENV=1  make the venv by hand (pyvenv.cfg + a link), as done anyway when `python -m venv` fails
#   DB_GZIP_OVER_MIB  the catalog copy in $OUT is gzipped above this size (15)
# Exit: 0 all done (reproduce finished or stopped at the budget: resumable); 1 a test or step failed;
#       2 setup failed (one line says why).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
T0=$(date +%s)
: "${OUT:?set OUT to the folder whose files come back (the device tool sets it)}"
DEVICE=${DEVICE:-cuda}
PROFILE=${PROFILE:-paper}
ONLY=${ONLY:-}
if [[ $DEVICE == cuda ]]; then JOBS=${JOBS:-4}; else JOBS=${JOBS:-1}; fi
BUDGET_S=${BUDGET_S:-540}
REPORT_RESERVE_S=${REPORT_RESERVE_S:-40}
STOP_GRACE_S=${STOP_GRACE_S:-40}
TESTS_TIMEOUT_S=${TESTS_TIMEOUT_S:-150}
PLAN_TIMEOUT_S=${PLAN_TIMEOUT_S:-90}
SETUP_TIMEOUT_S=${SETUP_TIMEOUT_S:-240}
PY=${PY:-python3}
TORCH_FROM=${TORCH_FROM:-}
STATE=${STATE:-$REPO/.gpu-state}
WHEELS=${WHEELS:-$REPO/.gpu-wheels}
if [[ -z ${DATA:-} ]]; then
  if [[ -d $REPO/.gpu-data/MNIST/raw ]]; then DATA=$REPO/.gpu-data; else DATA=${ADV_TUI_DATA:-}; fi
fi
VENV=$STATE/venv
DB=$STATE/$PROFILE.db
ONLY_ARGS=(); [[ -n $ONLY ]] && ONLY_ARGS=(--only "$ONLY")
if [[ $DEVICE == cuda ]]; then STACK=${STACK:-1}; else STACK=${STACK:-0}; fi
REPRO_ARGS=(); [[ $STACK == 1 ]] && REPRO_ARGS=(--stack)
ORDER=${ORDER:-shortest}
REPRO_ARGS+=(--order "$ORDER")  # the plan lists the steps in the order the reproduce starts them

mkdir -p "$OUT" "$STATE" || exit 2
OUT=$(cd "$OUT" && pwd); STATE=$(cd "$STATE" && pwd)

# ---- bookkeeping: one line per event on stdout (the device tool returns only the last 12,000 characters)
now() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET_S - $(now))); }
say() { printf '[%4ss] %s\n' "$(now)" "$*"; }
PHASES=(); declare -A P_S P_RC P_NOTE
phase_begin() { PH=$1; PH_T=$(date +%s); }
phase_end() {  # rc note
  P_S[$PH]=$(($(date +%s) - PH_T)); P_RC[$PH]=$1; P_NOTE[$PH]=${2:-}; PHASES+=("$PH"); write_timings
}
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//$'\n'/ }"; }
write_timings() {
  {
    printf '{"profile": %s, "device": %s, "jobs": %s, "only": %s, "budget_s": %s, "total_s": %s, "phases": {' \
      "$(json_str "$PROFILE")" "$(json_str "$DEVICE")" "$JOBS" "$(json_str "$ONLY")" "$BUDGET_S" "$(now)"
    local first=1 p
    for p in "${PHASES[@]}"; do
      ((first)) || printf ', '; first=0
      printf '%s: {"seconds": %s, "rc": %s, "note": %s}' "$(json_str "$p")" "${P_S[$p]}" "${P_RC[$p]}" "$(json_str "${P_NOTE[$p]}")"
    done
    printf '}}\n'
  } >"$OUT/timings.json"
}
die() { say "FAILED ($PH): $*"; phase_end 2 "$*"; exit 2; }
# limited to what is left of the budget (and at most $1 seconds)
budget_for() { local l; l=$(($(left) - ${2:-0})); ((l > $1)) && l=$1; ((l < 1)) && l=1; echo $l; }  # timeout 0 = none

# pip strictly offline, from WHEELS only: no index, no pip.conf / PIP_* settings (find-links, indexes)
for v in $(compgen -e | grep '^PIP_' || true); do unset "$v"; done
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
export PYTHONUNBUFFERED=1 COLUMNS=160 ADV_TUI_CACHE=$STATE/cache ADV_TUI_CONFIG=$STATE/config

# ---- 0. env ------------------------------------------------------------------------------------------------
phase_begin env
command -v "$PY" >/dev/null || die "no $PY on this machine: set PY to the python that holds torch"
TORCH_DIRS=()
if [[ -z $TORCH_FROM ]]; then
  mapfile -t TORCH_DIRS < <("$PY" -c 'import os, site, torch
for d in dict.fromkeys([*site.getsitepackages(), os.path.dirname(os.path.dirname(torch.__file__))]): print(d)' 2>/dev/null)
  ((${#TORCH_DIRS[@]})) || die "$PY $("$PY" -V 2>&1 | cut -d' ' -f2) cannot import torch: set PY to the python that holds torch, or TORCH_FROM"
elif [[ -x $TORCH_FROM/bin/python ]]; then
  # a venv holding torch and much else (the rehearsal): link only torch, torchvision and what they require
  # into STATE/torch-site, so the offline install below really installs the rest, as on the device
  "$TORCH_FROM/bin/python" - "$STATE/torch-site" <<'EOF' || die "cannot link torch from $TORCH_FROM"
import importlib.metadata as md, re, shutil, sys
from pathlib import Path
from packaging.requirements import Requirement
dest = Path(sys.argv[1]); shutil.rmtree(dest, ignore_errors=True); dest.mkdir(parents=True)
todo, seen = [("torch", ()), ("torchvision", ())], set()
while todo:
    name, extras = todo.pop()
    key = (re.sub(r"[-_.]+", "-", name).lower(), tuple(sorted(extras)))
    if key in seen: continue
    seen.add(key)
    try: dist = md.distribution(name)
    except md.PackageNotFoundError: continue
    for r in map(Requirement, dist.requires or []):
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in ("", *extras)):
            todo.append((r.name, tuple(r.extras)))
    base = Path(dist.locate_file(""))
    for top in {Path(str(f)).parts[0] for f in dist.files or []}:
        if top.startswith("..") or top == "__pycache__" or top.endswith(".pth"): continue
        if (base / top).exists() and not (dest / top).exists(): (dest / top).symlink_to(base / top)
EOF
  TORCH_DIRS=("$STATE/torch-site")
elif [[ -d $TORCH_FROM/torch ]]; then
  TORCH_DIRS=("$TORCH_FROM")
else
  die "TORCH_FROM=$TORCH_FROM is neither a venv nor a site-packages dir holding torch/"
fi
# one line of statements (a .pth runs a line that starts with `import`; no comprehension: it runs in a function's locals)
SITE_PY="import site; $(printf '%s\n' "${TORCH_DIRS[@]}" | "$PY" -c 'import sys; print("; ".join(f"site.addsitedir({l.rstrip()!r})" for l in sys.stdin))')"
{
  echo "date: $(date -u +%FT%TZ)   host: $(uname -srm)   repo: $REPO"
  "$PY" -c "$SITE_PY"'
import platform, sys, torch
print("python:", platform.python_version(), sys.executable)
print("torch:", torch.__version__, "cuda:", torch.version.cuda, "available:", torch.cuda.is_available(),
      "gpu:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-", "from:", torch.__file__)' 2>&1
  echo "torch dirs: ${TORCH_DIRS[*]}"
  if command -v nvidia-smi >/dev/null; then nvidia-smi 2>&1; else echo "nvidia-smi: not on this machine"; fi
} >"$OUT/env.txt"
say "$(grep -m1 '^python:' "$OUT/env.txt")"
say "$(grep -m1 '^torch:' "$OUT/env.txt" | cut -c1-150)"
grep -q '^torch: [0-9]' "$OUT/env.txt" || die "torch does not import: $(grep -v '^date' "$OUT/env.txt" | head -3 | tail -1)"
phase_end 0

# ---- 1. setup ----------------------------------------------------------------------------------------------
phase_begin setup
PIPWHL=$(ls "$WHEELS"/pip-*.whl 2>/dev/null | head -1)
[[ -n $PIPWHL && -f $WHEELS/requirements.txt ]] ||
  die "no wheels in $WHEELS: run scripts/gpu_wheels.sh where PyPI is reachable and carry .gpu-wheels"
# every distribution in the folder needs a wheel this interpreter accepts (python version, glibc, x86_64)
bad=$("$PY" - "$PIPWHL" "$WHEELS" <<'EOF'
import os, sys
sys.path.insert(0, sys.argv[1])
from pip._vendor.packaging.tags import sys_tags
from pip._vendor.packaging.utils import parse_wheel_filename
ok, tags = {}, set(sys_tags())
for f in os.listdir(sys.argv[2]):
    if f.endswith(".whl"):
        name, _, _, wtags = parse_wheel_filename(f)
        ok[name] = ok.get(name, False) or bool(wtags & tags)
print(" ".join(sorted(n for n, good in ok.items() if not good)))
EOF
) || die "cannot read the wheel tags of $WHEELS"
if [[ -n $bad ]]; then
  v=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  die "the wheels in $WHEELS do not fit this Python $v ($(uname -m)): $bad; run PY_VERSIONS=$v scripts/gpu_wheels.sh and carry .gpu-wheels again"
fi
[[ -f $DATA/MNIST/raw/train-images-idx3-ubyte.gz ]] ||
  die "no MNIST in ${DATA:-(DATA unset)}/MNIST/raw: run scripts/gpu_wheels.sh (copies it into .gpu-data) and carry .gpu-data"
# the venv: `python -m venv`, or (a python without the venv module, or MANUAL_VENV=1) the same by hand:
# pyvenv.cfg naming the base interpreter's home, bin/python a link to it
make_venv() {
  if [[ ${MANUAL_VENV:-0} != 1 ]] && "$PY" -m venv --without-pip --system-site-packages "$VENV"; then return 0; fi
  echo "python -m venv failed or MANUAL_VENV=1: making the venv by hand"
  rm -rf "$VENV"
  local base ver
  base=$("$PY" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))') &&
    ver=$("$PY" -c 'import platform; print(platform.python_version())') &&
    mkdir -p "$VENV/bin" "$VENV/lib/python${ver%.*}/site-packages" &&
    printf 'home = %s\ninclude-system-site-packages = true\nversion = %s\n' "$(dirname "$base")" "$ver" >"$VENV/pyvenv.cfg" &&
    ln -s "$base" "$VENV/bin/python" && ln -s python "$VENV/bin/python3" &&
    [[ $("$VENV/bin/python" -c 'import sys; print(sys.prefix)') == "$VENV" ]]
}
stamp=$({ ls "$WHEELS"; cat pyproject.toml; echo "$PY ${TORCH_DIRS[*]} $REPO"; } | cksum | cut -d' ' -f1)
if [[ -x $VENV/bin/adv-tui && $(cat "$VENV/.gpu-stamp" 2>/dev/null) == "$stamp" ]]; then
  note="venv reused ($VENV)"
else
  rm -rf "$VENV"
  t=$(budget_for "$SETUP_TIMEOUT_S")
  {
    # --without-pip: no ensurepip needed (pip runs from its wheel); --system-site-packages: the base python's
    # packages; the .pth adds the site dirs of the python that holds torch (on the device python3 is itself
    # a venv, /opt/torch/.venv, whose packages --system-site-packages would not reach)
    make_venv &&
      sp=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') &&
      echo "$SITE_PY" >"$sp/_gpu_torch_site.pth" &&
      timeout "$t" "$VENV/bin/python" "$PIPWHL/pip" install -q --no-index --find-links "$WHEELS" \
        --no-warn-script-location -r "$WHEELS/requirements.txt" &&
      timeout "$t" "$VENV/bin/python" "$PIPWHL/pip" install -q --no-index --no-deps --no-build-isolation -e "$REPO"
  } >"$STATE/setup.log" 2>&1 || {
    cat "$STATE/setup.log" >>"$OUT/env.txt"
    die "offline install failed: $(grep -E 'ERROR|Error' "$STATE/setup.log" | head -2 | tr '\n' ' ' | cut -c1-300)"
  }
  echo "$stamp" >"$VENV/.gpu-stamp"
  note="venv made offline from $(ls "$WHEELS"/*.whl | wc -l) wheels"
fi
export PATH=$VENV/bin:$PATH ADV_TUI_DATA=$DATA
check=$(python -c 'import torch, textual, sqlmodel, tui_adv
print(f"torch {torch.__version__} cuda {torch.cuda.is_available()} textual {textual.__version__} adv-tui {tui_adv.__version__}")' 2>&1) ||
  die "the venv does not import: $(echo "$check" | tail -1)"
{ echo "venv: $check"; echo "adv-tui: $(command -v adv-tui)"; } >>"$OUT/env.txt"
if [[ $DEVICE == cuda ]]; then
  python -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null ||
    die "torch $(python -c 'import torch; print(torch.__version__)') sees no CUDA GPU (DEVICE=cpu to rehearse without one)"
fi
say "setup: $note; $check"
phase_end 0 "$note"

# ---- 2. tests ----------------------------------------------------------------------------------------------
phase_begin tests
mapfile -t files < <(grep -rlE 'mark\.cuda\b' tests --include='*.py' | grep -v conftest | sort)
if ((${#files[@]} == 0)); then
  echo "no test file carries @pytest.mark.cuda" >"$OUT/tests.log"; rc=5
else
  t=$(budget_for "$TESTS_TIMEOUT_S" $((REPORT_RESERVE_S + 60)))
  timeout -k 10 "$t" python -m pytest -q -m cuda -p no:cacheprovider "${files[@]}" >"$OUT/tests.log" 2>&1
  rc=$?
fi
summary=$(grep -E '(passed|failed|skipped|error|deselected|no tests ran)' "$OUT/tests.log" | tail -1)
[[ $rc == 124 || $rc == 137 ]] && summary="timed out after ${t}s; $summary"
test_failed=0
if [[ $rc == 0 ]]; then
  say "tests: ${#files[@]} file(s) with cuda marks: ${summary:-ok}"
elif [[ $rc == 5 && $DEVICE == cpu ]]; then
  say "tests: no cuda-marked test collected (exit 5; tolerated on the CPU rehearsal)"
else
  test_failed=1
  say "tests: FAILED (exit $rc): ${summary:-see tests.log}"
  grep -E '^(FAILED|ERROR) ' "$OUT/tests.log" | head -8 | cut -c1-200 | sed 's/^/    /'
fi
phase_end "$rc" "${summary:-}"

# ---- 2b. bench ---------------------------------------------------------------------------------------------
if [[ $DEVICE == cuda ]]; then BENCH_S=${BENCH_S:-120}; else BENCH_S=${BENCH_S:-0}; fi
if ((BENCH_S > 0)); then
  phase_begin bench
  t=$(budget_for "$BENCH_S" $((REPORT_RESERVE_S + 120)))
  # SIGINT at the limit: it prints the rounds finished so far
  timeout -s INT -k 10 "$t" python benchmarks/epoch.py --json --device "$DEVICE" --repeats 2 ${BENCH_ARGS:-} >"$OUT/epoch.json" 2>"$STATE/epoch.err"
  rc=$?
  # stopped at its limit (124) after some rounds: what it printed is still a whole JSON object
  if [[ $rc == 124 ]] && python -c 'import json, sys; json.load(open(sys.argv[1]))' "$OUT/epoch.json" 2>/dev/null; then
    say "bench: stopped at its ${t}s limit; $(tail -1 "$STATE/epoch.err" | cut -c1-80)"; rc=0
  fi
  if [[ $rc == 0 ]]; then
    say "bench: $(python - "$OUT/epoch.json" <<'EOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
rows = [f"{k} eager {v.get('eager_s')} graphed {v.get('graphed_s')} stacked/member {v.get('stacked_per_member_s', '-')} floor {v['floor_s']} s"
        for k, v in d.items() if isinstance(v, dict) and "floor_s" in v]
print(f"matrix {d['matrix_rate_gflops']} GFLOP/s; " + "; ".join(rows))
EOF
)"
  else
    say "bench: exit $rc ($( ((rc == 124)) && echo "stopped after ${t}s" || tail -1 "$STATE/epoch.err" | cut -c1-200))"
    tail -5 "$STATE/epoch.err" >>"$OUT/epoch.json"
  fi
  phase_end "$rc"
fi

# ---- 3. plan -----------------------------------------------------------------------------------------------
phase_begin plan
t=$(budget_for "$PLAN_TIMEOUT_S" $((REPORT_RESERVE_S + 60)))
timeout -k 5 "$t" adv-tui reproduce --profile "$PROFILE" --plan --device "$DEVICE" --jobs "$JOBS" "${ONLY_ARGS[@]}" "${REPRO_ARGS[@]}" \
  >"$OUT/plan.txt" 2>&1
rc=$?
if [[ $rc == 0 ]]; then say "plan: $(grep -E '^estimated total' "$OUT/plan.txt" | tail -1 | cut -d'(' -f1)"
else say "plan: exit $rc ($( ((rc == 124)) && echo "timed out after ${t}s" || tail -1 "$OUT/plan.txt" | cut -c1-200))"; fi
phase_end "$rc"

# ---- 4. reproduce ------------------------------------------------------------------------------------------
phase_begin reproduce
repro_rc=0
if [[ $test_failed == 1 && ${STOP_ON_TEST_FAILURE:-0} == 1 ]]; then
  say "reproduce: skipped (the CUDA tests failed and STOP_ON_TEST_FAILURE=1)"; repro_rc=1
  phase_end 1 skipped
else
  t=$(($(left) - REPORT_RESERVE_S - STOP_GRACE_S))
  if ((t < 30)); then
    say "reproduce: skipped, ${t}s left of the budget"; phase_end 0 "no time left"
  else
    n0=$( [[ -f $DB ]] && python - "$DB" <<'EOF'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from runs where status = 'completed'").fetchone()[0])
EOF
    )
    say "reproduce: --profile $PROFILE ${ONLY:+--only $ONLY }--device $DEVICE --jobs $JOBS ${REPRO_ARGS[*]}, stopped after ${t}s;" \
      "catalog $DB (${n0:-0} completed runs before)"
    l0=$(cat "$STATE/reproduce.log" 2>/dev/null | wc -l)
    echo "=== $(date -u +%FT%TZ) reproduce --profile $PROFILE ${ONLY:+--only $ONLY }--device $DEVICE --jobs $JOBS (limit ${t}s)" >>"$STATE/reproduce.log"
    # SIGINT: reproduce cancels its running steps cleanly (their workers ignore SIGINT; the parent stops
    # them), prints the scorecard and exits; after STOP_GRACE_S more it is killed (its runs then read as
    # interrupted, which the next call resumes from their checkpoints too)
    timeout -s INT -k "$STOP_GRACE_S" "$t" adv-tui reproduce --profile "$PROFILE" --device "$DEVICE" --db "$DB" \
      --checkpoints "$STATE/checkpoints" --jobs "$JOBS" --headless "${ONLY_ARGS[@]}" "${REPRO_ARGS[@]}" >>"$STATE/reproduce.log" 2>&1
    repro_rc=$?
    tail -n +$((l0 + 2)) "$STATE/reproduce.log" >"$STATE/reproduce.last"
    # the step lines (`key: status (run N, S s)`), the suite's end, errors
    grep -E '^[A-Za-z0-9_.@+-]+: [a-z]+ \(run [0-9]+|suite finished|profile: [0-9]+ s|adv-tui: |received, stopping' \
      "$STATE/reproduce.last" | tail -40 | cut -c1-160 | sed 's/^/    /'
    case $repro_rc in
      0) note="suite finished" ;;
      124) note="stopped at the budget (cancelled steps continue from their checkpoints on the next call)"; repro_rc=0 ;;
      137) note="killed ${STOP_GRACE_S}s after the stop (its runs read as interrupted; the next call resumes them)"; repro_rc=0 ;;
      *) note="exit $repro_rc" ;;
    esac
    say "reproduce: $note"
    phase_end "$repro_rc" "$note"
  fi
fi
cp "$STATE/reproduce.log" "$OUT/reproduce.log" 2>/dev/null

# ---- 5. report ---------------------------------------------------------------------------------------------
phase_begin report
rc=0
if [[ -f $DB ]]; then
  t=$(budget_for 120 -30)
  echo "=== report" >>"$OUT/reproduce.log"
  timeout "$t" adv-tui report --markdown --profile "$PROFILE" --db "$DB" >"$OUT/report.md" 2>>"$OUT/reproduce.log" || rc=$?
  timeout 30 adv-tui runs list --json -n 100000 --db "$DB" >"$STATE/runs.json" 2>>"$OUT/reproduce.log" || rc=$?
  # one consistent file (the WAL folded in); gzip when over the tool's 16 MiB a file
  python - "$DB" "$OUT/$PROFILE.db" "${DB_GZIP_OVER_MIB:-15}" <<'EOF' || rc=$?
import gzip, os, shutil, sqlite3, sys
src, dst, over_mib = sys.argv[1:]
for f in (dst, dst + ".gz"):
    if os.path.exists(f): os.remove(f)
a, b = sqlite3.connect(src), sqlite3.connect(dst)
a.backup(b); b.close(); a.close()
if os.path.getsize(dst) > float(over_mib) * 2**20:
    with open(dst, "rb") as i, gzip.open(dst + ".gz", "wb") as o: shutil.copyfileobj(i, o)
    os.remove(dst)
EOF
  totals=$(grep -m1 -E '^\*\*[0-9]+ PASS' "$OUT/report.md" | tr -d '*')
  # each claim's verdict, from the scorecard table (its first row per id): "PASS: P01 P03; FAIL: …"
  verdicts=$(awk -F'|' '/^\| [PSC][0-9]+ \|/ { id = $2; gsub(/ /, "", id); if (seen[id]++) next
      for (i = 3; i <= NF; i++) if ($i ~ /\*\*[A-Z ]+\*\*/) { v = $i; gsub(/[* ]+$|^[* ]+/, "", v); ids[v] = ids[v] " " id; break } }
      END { for (v in ids) if (v != "NOT RUN") printf "%s:%s; ", v, ids[v] }' "$OUT/report.md")
  # run counts by status, and where the unfinished ones stand (a cancelled run with an epoch > 0 has a checkpoint)
  runs=$(python - "$STATE/runs.json" <<'EOF' 2>/dev/null
import collections, json, sys
r = json.load(open(sys.argv[1]))
line = ", ".join(f"{n} {s}" for s, n in collections.Counter(x["status"] for x in r).items())
open_ = [f"{x['run_id']} {x['name']} {x['status']} at epoch {x.get('epoch')}/{x.get('epochs')}" for x in r if x["status"] != "completed"]
print(line + ("; not completed: " + "; ".join(open_[:8]) + (" …" if len(open_) > 8 else "") if open_ else ""))
EOF
)
  say "report: ${totals:-no scorecard line (see report.md)}; runs: ${runs:-?}; catalog $(ls "$OUT" | grep -E "^$PROFILE\.db")"
  [[ -n $verdicts ]] && say "report: ${verdicts%; }"
else
  say "report: no catalog yet ($DB)"; rc=1
fi
phase_end "$rc"

status=0
((test_failed)) && status=1
((repro_rc != 0)) && status=1
say "done in $(now)s of ${BUDGET_S}s: $(for p in "${PHASES[@]}"; do printf '%s %ss, ' "$p" "${P_S[$p]}"; done | sed 's/, $//'); exit $status"
say "\$OUT: $(cd "$OUT" && ls | paste -sd' ' -) ($(du -sh "$OUT" | cut -f1))"
exit $status
