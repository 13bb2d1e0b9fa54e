#!/usr/bin/env bash
# scripts/gpu_wheels.sh: prepare, HERE (a machine that reaches PyPI), what scripts/gpu_paper.sh needs on the
# device machine, which has a Python with torch but no network and none of our other dependencies:
#
#   .gpu-wheels/  every runtime dependency of adv-tui except torch/torchvision (and their nvidia-* libraries),
#                 plus pytest, pytest-asyncio, hypothesis (the CUDA tests), setuptools (to install adv-tui
#                 itself offline) and pip (run from its wheel there); requirements.txt = what gpu_paper.sh installs
#   .gpu-data/    MNIST's four .gz files (MNIST/raw/), copied from $ADV_TUI_DATA (the ../shared beside the
#                 checkout does not travel to the device)
#
# Both folders are git-ignored; name them in the device call's `carry`: [".gpu-wheels", ".gpu-data"].
# Together with the working tree they must stay under the device tool's 64 MiB; the script sums them and
# fails when they do not.
#
#   scripts/gpu_wheels.sh                         # wheels for CPython 3.11 (this machine: the rehearsal) and 3.12 (the device)
#   PY_VERSIONS=3.13 scripts/gpu_wheels.sh        # if the device's python3 is another version (gpu_paper.sh prints
#                                                 # it first and names the version when the wheels do not fit)
#   MATPLOTLIB=1 scripts/gpu_wheels.sh            # also matplotlib: only `report --figures` needs it, and the device
#                                                 # image has one; with numpy/pillow/fonttools it is ~41 MiB per Python
#                                                 # version (measured for 3.12), over the 64 MiB with the rest
#
# Versions are pinned to those of the development venv (.venv, i.e. what the test suite ran with) where it has
# them (PIN=0: the newest that fit pyproject.toml). Pure-Python wheels serve every version; binary ones
# (pydantic-core, SQLAlchemy, MarkupSafe, hypothesis) come once per version in PY_VERSIONS.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELS=${WHEELS:-$REPO/.gpu-wheels}
DATA_OUT=${DATA_OUT:-$REPO/.gpu-data}
SRC_DATA=${ADV_TUI_DATA:-$REPO/../shared/data/mnist}
PY_VERSIONS=${PY_VERSIONS:-3.11 3.12}
MATPLOTLIB=${MATPLOTLIB:-0}
PIN=${PIN:-1}
LIMIT_MIB=${LIMIT_MIB:-64}
if [[ -z ${PY:-} ]]; then
  if [[ -x $REPO/.venv/bin/python ]]; then PY=$REPO/.venv/bin/python; else PY=python3; fi
fi
# manylinux up to glibc 2.28 (RHEL 8 / Debian 10 and newer); the device's image is newer than that
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
           manylinux_2_12_x86_64 manylinux2010_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64)

mkdir -p "$WHEELS"
rm -f "$WHEELS"/*.whl "$WHEELS"/*.tar.gz  # one version of each: a stale second one would confuse the offline install

# what to install there: pyproject's dependencies minus torch/torchvision (minus matplotlib unless MATPLOTLIB=1),
# the test extra's pytest / pytest-asyncio / hypothesis, and the build backend (setuptools) for `pip install -e .`
"$PY" - "$REPO/pyproject.toml" "$WHEELS/requirements.txt" "$MATPLOTLIB" <<'EOF'
import re, sys, tomllib
pyproject, out, matplotlib = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
p = tomllib.load(open(pyproject, "rb"))
name = lambda r: re.match(r"[A-Za-z0-9._-]+", r).group(0).lower().replace("_", "-")
skip = {"torch", "torchvision"} | (set() if matplotlib else {"matplotlib"})
reqs = [r for r in p["project"]["dependencies"] if name(r) not in skip]
reqs += [r for r in p["project"]["optional-dependencies"]["test"] if name(r) in {"pytest", "pytest-asyncio", "hypothesis"}]
reqs += [r for r in p["build-system"]["requires"] if name(r) == "setuptools"]
open(out, "w").write("".join(f"{r}\n" for r in reqs))
EOF

# pins: the development venv's versions (pip freeze --all also lists pip and setuptools)
: >"$WHEELS/constraints.txt"
if [[ $PIN == 1 ]]; then
  "$PY" -m pip freeze --all --exclude-editable 2>/dev/null | grep -E '^[A-Za-z0-9._-]+==' |
    grep -viE '^(torch|torchvision|triton|nvidia-|cuda-)' >"$WHEELS/constraints.txt" || true
fi

for v in $PY_VERSIONS; do
  args=(--only-binary=:all: --implementation cp --python-version "$v")
  for p in "${PLATFORMS[@]}"; do args+=(--platform "$p"); done
  # the machine's pip.conf may add file:// indexes that do not exist: their warnings are noise
  "$PY" -m pip download -q --disable-pip-version-check "${args[@]}" -d "$WHEELS" \
    -r "$WHEELS/requirements.txt" -c "$WHEELS/constraints.txt" pip 2>&1 |
    grep -v 'is ignored: it is neither a file nor a directory' || true
  [[ ${PIPESTATUS[0]} == 0 ]] || { echo "gpu_wheels: pip download for Python $v failed" >&2; exit 1; }
done
printf 'py_versions=%s\nmatplotlib=%s\nmade=%s\n' "$PY_VERSIONS" "$MATPLOTLIB" "$(date -u +%FT%TZ)" >"$WHEELS/MANIFEST"

# MNIST for the device (read-only here: only copied from)
raw=$SRC_DATA/MNIST/raw
mkdir -p "$DATA_OUT/MNIST/raw"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [[ -f $raw/$f ]] || { echo "gpu_wheels: $raw/$f is missing (set ADV_TUI_DATA to a root holding MNIST/raw/*.gz)" >&2; exit 1; }
  cp --no-preserve=mode,ownership "$raw/$f" "$DATA_OUT/MNIST/raw/$f"
done

# the device tool's budget: tracked + untracked-not-ignored files + the carried folders, 64 MiB in all
bytes() { du -sb "$1" | cut -f1; }
tree=$(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
w=$(bytes "$WHEELS"); d=$(bytes "$DATA_OUT"); total=$((tree + w + d))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
echo "gpu_wheels: $(ls "$WHEELS"/*.whl | wc -l) wheels for Python $PY_VERSIONS in $WHEELS ($(mib "$w") MiB)," \
  "MNIST in $DATA_OUT ($(mib "$d") MiB), working tree $(mib "$tree") MiB: $(mib "$total") of $LIMIT_MIB MiB"
if ((total > LIMIT_MIB * 1048576)); then
  echo "gpu_wheels: over the device tool's $LIMIT_MIB MiB: leave matplotlib out (MATPLOTLIB=0) or download for one Python (PY_VERSIONS=3.12)" >&2
  exit 1
fi
echo 'gpu_wheels: carry [".gpu-wheels", ".gpu-data"] in the device call; see scripts/gpu_paper.sh'
