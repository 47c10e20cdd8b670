#!/usr/bin/env bash
# netflix-oca's placement (weighted rendezvous hashing) beside the `hashring` crate with
# 160 virtual nodes per node, in one run:
# - balance and movement with 1M keys on 10 and 100 nodes (benches/src/bin/placement.rs);
# - lookup times from criterion (benches/benches/oca.rs), key hashing included.
#
#   scripts/bench-placement.sh [KEYS]      (default 1000000)
#
# Goals (issue: netflix-oca): peak/mean load <= 1.03; keys moved on adding or removing a
# node <= 1.1 x the ideal 1/N; a lookup <= 100 ns and a 3-copy lookup <= 1 us at 100 nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
keys="${1:-1000000}"
echo "== balance and movement ($keys keys)"
cargo run -q --release -p benches --bin placement -- "$keys"
echo
echo "== lookup times (criterion)"
cargo bench -q -p benches --bench oca -- --warm-up-time 2 --measurement-time 5 >/dev/null
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion")
print("| operation | nodes | netflix-oca | hashring, 160 vnodes | goal |")
print("|---|---:|---:|---:|---|")
for group, goal in [("placement_lookup", 100.0), ("placement_3_copies", 1000.0)]:
    for n in (10, 100):
        t = {}
        for impl in ("netflix-oca", "hashring-160"):
            est = json.loads((root / group / impl / str(n) / "new" / "estimates.json").read_text())
            t[impl] = est["mean"]["point_estimate"]
        ok = "" if n != 100 else (f"<= {goal:.0f} ns: " + ("met" if t["netflix-oca"] <= goal else "MISSED"))
        print(f"| {group} | {n} | {t['netflix-oca']:.1f} ns | {t['hashring-160']:.1f} ns | {ok} |")
PY
