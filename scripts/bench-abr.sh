#!/usr/bin/env bash
# Speed of netflix-abr's simulator and algorithms: criterion (benches/benches/abr.rs) and
# abr_sim over the 127 Pensieve traces, and, given a local hongzimao/pensieve checkout, the
# reference Python simulator on the same traces in the same run (scripts/pensieve-compare.sh,
# which also checks that every chunk agrees).
#
#   scripts/bench-abr.sh [PENSIEVE_CHECKOUT]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh bench
rm -rf target/criterion/abr_pensieve_run target/criterion/abr_robust_mpc_decision
cargo bench -p benches --bench abr
cargo build -q --release -p netflix-abr --example abr_sim
d=netflix-abr/tests/data
echo
echo "machine: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | xargs || uname -m), $(nproc) cores"
echo "rustc: $(rustc --version)"
echo "date: $(date -u +%Y-%m-%d)"
echo
echo "criterion (whole Pensieve-compatible runs over $(ls $d/traces | wc -l) traces):"
cargo run -q -p benches --bin report -- abr
echo
echo "abr_sim (simulation time, wall_s; --repeat 20, one core):"
printf '%-12s %12s %16s\n' algorithm chunks chunk-steps/s
for a in bb rb bola bola-e dynamic mpc robust-mpc sage; do
  reps=20; [ "$a" = sage ] && reps=2
  target/release/examples/abr_sim --traces $d/traces --video-sizes $d/video_sizes \
    --algorithm "$a" --pensieve-compat --json --repeat $reps 2>/dev/null |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print("%-12s %12d %16.0f" % (j["algorithm"], j["chunks"], j["chunks"]/j["wall_s"]))'
done
if [ $# -ge 1 ]; then
  echo
  scripts/pensieve-compare.sh "$1"
fi
