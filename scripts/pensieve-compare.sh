#!/usr/bin/env bash
# Runs hongzimao/pensieve's reference simulator (test/bb.py and test/mpc.py) and ours
# (abr_sim --pensieve-compat) side by side on the same traces, checks that every chunk of
# every trace agrees, and times both.
#
#   scripts/pensieve-compare.sh PENSIEVE_CHECKOUT [TRACES_DIR] [VIDEO_SIZES_DIR]
#
# PENSIEVE_CHECKOUT is a local clone of https://github.com/hongzimao/pensieve (nothing of it
# is copied into this repository). The traces and chunk sizes default to netflix-abr's test
# data. The reference runs under Python 3 with numpy, on a scratch copy with the smallest
# changes that let it run at all: Python 3 syntax (print, xrange, text-mode logs), sorted
# trace order (its raw os.listdir order depends on the file system), and mpc.py unpacking
# the 8 values fixed_env returns (as published it unpacks 7 and stops). Python 3 prints
# floats with all their digits where Python 2 printed 12, so logs are compared as numbers
# (to 1e-9 relative), not as text. bb.py replays the first trace at the end of its run and
# overwrites that trace's log; the clock column of that one log is not compared.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ref=${1:?usage: scripts/pensieve-compare.sh PENSIEVE_CHECKOUT [TRACES_DIR] [VIDEO_SIZES_DIR]}
traces=$(cd "${2:-netflix-abr/tests/data/traces}" && pwd)
sizes=$(cd "${3:-netflix-abr/tests/data/video_sizes}" && pwd)
[ -f "$ref/test/fixed_env.py" ] || { echo "$ref/test/fixed_env.py not found: is $ref a pensieve checkout?" >&2; exit 2; }

# Python 3 with numpy (a private virtualenv when the system's has none).
py=python3
if ! $py -c 'import numpy' 2>/dev/null; then
  venv=$root/target/pensieve-venv
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating $venv with numpy" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q numpy
  fi
  py=$venv/bin/python
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ref/results" "$work/ours"
cp "$ref"/test/{fixed_env.py,load_trace.py,bb.py,mpc.py} "$work/ref/"
cp "$sizes"/video_size_* "$work/ref/"
ln -s "$traces" "$work/ref/cooked_traces"

$py - "$work/ref" <<'PY'
import sys, re
d = sys.argv[1]
def patch(name, subs):
    path = f"{d}/{name}"
    src = open(path).read()
    for old, new in subs:
        if old not in src:
            sys.exit(f"pensieve-compare: {name}: expected text not found: {old!r}")
        src = src.replace(old, new)
    open(path, "w").write(src)
patch("load_trace.py", [("cooked_files = os.listdir(cooked_trace_folder)",
                         "cooked_files = sorted(os.listdir(cooked_trace_folder))")])
patch("fixed_env.py", [("xrange(", "range(")])
for name in ("bb.py", "mpc.py"):
    patch(name, [("open(log_path, 'wb')", "open(log_path, 'w')"),
                 ('print "video count", video_count', 'print("video count", video_count)')])
patch("mpc.py", [("import matplotlib.pyplot as plt\n", ""),
                 ("video_chunk_size, \\\n        end_of_video, video_chunk_remain",
                  "video_chunk_size, next_video_chunk_sizes, \\\n        end_of_video, video_chunk_remain")])
PY

cargo build -q --release -p netflix-abr --example abr_sim
sim=$root/target/release/examples/abr_sim

now() { date +%s.%N; }
calc() { $py -c "print($1)"; }
declare -A ref_s ours_s
for algo in bb robust-mpc; do
  script=${algo/robust-mpc/mpc}
  echo "==> reference $script.py" >&2
  t0=$(now); (cd "$work/ref" && $py "$script.py" >/dev/null); t1=$(now)
  ref_s[$algo]=$(calc "$t1 - $t0")
  echo "==> abr_sim --algorithm $algo --pensieve-compat" >&2
  t0=$(now)
  "$sim" --traces "$traces" --video-sizes "$sizes" --algorithm "$algo" --pensieve-compat \
    --log-dir "$work/ours" --json > "$work/ours/$algo.json"
  t1=$(now)
  ours_s[$algo]=$(calc "$t1 - $t0")
done

$py - "$work/ref/results" "$work/ours" "$(ls "$traces" | LC_ALL=C sort | head -1)" <<'PY'
import os, sys
ref, ours, first = sys.argv[1:4]
bad = checked = files = 0
for name in sorted(os.listdir(ref)):
    if not name.startswith("log_sim_"):
        continue
    other = os.path.join(ours, name)
    if not os.path.exists(other):
        print(f"missing in ours: {name}"); bad += 1; continue
    a = [l.split("\t") for l in open(os.path.join(ref, name)).read().splitlines() if l.strip()]
    b = [l.split("\t") for l in open(other).read().splitlines() if l.strip()]
    files += 1
    if len(a) != len(b):
        print(f"{name}: {len(a)} chunks in the reference, {len(b)} in ours"); bad += 1; continue
    skip_clock = name == f"log_sim_bb_{first}"
    for i, (x, y) in enumerate(zip(a, b)):
        checked += 1
        for col, (u, v) in enumerate(zip(x, y)):
            if col == 0 and skip_clock:
                continue
            u, v = float(u), float(v)
            if abs(u - v) > 1e-9 * max(1.0, abs(u)):
                print(f"{name} chunk {i} column {col + 1}: reference {u!r}, ours {v!r}")
                bad += 1
                break
print(f"compared {checked} chunks in {files} logs: {'all agree' if bad == 0 else f'{bad} differ'}")
sys.exit(1 if bad else 0)
PY

n=$(ls "$traces" | wc -l)
echo
echo "traces: $n ($traces)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | xargs || uname -m), $(nproc) cores; $($py --version), numpy $($py -c 'import numpy; print(numpy.__version__)')"
echo "date: $(date -u +%Y-%m-%d)"
printf '%-12s %14s %14s %10s\n' algorithm "reference (s)" "abr_sim (s)" speed-up
for algo in bb robust-mpc; do
  printf '%-12s %14.3f %14.3f %9.0fx\n' "$algo" "${ref_s[$algo]}" "${ours_s[$algo]}" \
    "$(calc "${ref_s[$algo]} / ${ours_s[$algo]}")"
done
echo "(wall time of whole processes, loading included; abr_sim's own simulation time is in its JSON wall_s)"
