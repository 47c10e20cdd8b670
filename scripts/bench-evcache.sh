#!/usr/bin/env bash
# Measures netflix-evcache against the async-memcached and memcache crates, side by side in
# one run, on the same local memcached servers (started here on free ports, stopped at the
# end), with the load generator in benches/src/bin/memload.rs.
#
#   scripts/bench-evcache.sh [ROUNDS] [SECONDS]      (default: 3 rounds of 5 s per run)
#
# Each round runs every client once per operation, alternating (the machine is shared and
# its speed drifts); ratios are taken within a round and the median round is reported.
# MEMCACHED_THREADS (default 4, memcached's own default) sets the servers' worker threads.
#
# Goals (issue 5):
#   get and set ops/s at equal concurrency (32) >= 1.5x async-memcached, >= 3x memcache;
#   get p99 at half of our peak rate <= 1 ms;
#   a set replicated to 3 zones with latch ONE: p50 <= 1.3x a single-copy set;
#   ketama lookup <= 50 ns (criterion, benches/benches/evcache.rs): the ring lookup of a
#   key's hash, and, apart, the MD5 key hash that spymemcached compatibility requires.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh bench >/dev/null
rounds="${1:-3}"
secs="${2:-5}"
threads="${MEMCACHED_THREADS:-4}"
out=target/bench-evcache
mkdir -p "$out"
cargo build -q --release -p benches --bin memload
load=target/release/memload

pids=()
ports=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
as_root=()
[ "$(id -u)" = 0 ] && as_root=(-u root)
for _ in 1 2 3; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  memcached -l 127.0.0.1 -p "$port" -U 0 -t "$threads" -m 1024 -c 4096 "${as_root[@]}" &
  pids+=($!)
  ports+=("$port")
done
for p in "${ports[@]}"; do
  for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$p)).close()" 2>/dev/null && break
    sleep 0.1
  done
done
one="127.0.0.1:${ports[0]}"
three="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
results="$out/results.jsonl"
: >"$results"

run() { # round, label, memload args...
  local round=$1 label=$2; shift 2
  local line
  line=$("$load" --json --duration "$secs" "$@")
  echo "{\"round\":$round,\"label\":\"$label\",\"run\":$line}" >>"$results"
  echo "  round $round $label: $(echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f ops/s, p50 %s ms, p99 %s ms, errors %s" % (r["ops_per_sec"], r["p50_ms"], r["p99_ms"], r["errors"]))')"
}

echo "memcached: 3 servers, $threads threads each; $(nproc) cores; $rounds rounds of $secs s"
for round in $(seq "$rounds"); do
  for op in get set; do
    for client in evcache async-memcached memcache; do
      run "$round" "$op/$client" --servers "$one" --client "$client" --op "$op" --concurrency 32
    done
  done
  # Half of this round's peak get rate, open loop.
  peak=$(python3 -c "
import json
rs=[json.loads(l) for l in open('$results')]
print(int([r for r in rs if r['round']==$round and r['label']=='get/evcache'][0]['run']['ops_per_sec']))")
  run "$round" "get-half-peak/evcache" --servers "$one" --client evcache --op get --concurrency 32 --rate $((peak / 2))
  # Set latency at a moderate load (10,000 sets/s from 8 callers): one copy, then three
  # zones with latch ONE.
  run "$round" "set-latency/single" --servers "$one" --client evcache --op set --concurrency 8 --rate 10000 --latch one
  run "$round" "set-latency/replicated" --servers "$three" --client evcache --op set --concurrency 8 --rate 10000 --latch one
done

echo "ketama lookup (criterion)"
cargo bench -q -p benches --bench evcache -- --warm-up-time 1 --measurement-time 3 ketama \
  >"$out/ketama-raw.txt" 2>/dev/null
python3 - "$out/ketama-raw.txt" <<'PY' | tee "$out/ketama.txt"
import re, sys
name = None
for line in open(sys.argv[1]):
    m = re.match(r"^(ketama\S*)", line)
    if m:
        name = m.group(1)
    t = re.search(r"time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
    if t and name:
        print(f"{name}: {t.group(1)}")
        name = None
PY

python3 - "$results" <<'PY'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
rounds = sorted({r["round"] for r in rs})
def get(rnd, label, field):
    return [r["run"][field] for r in rs if r["round"] == rnd and r["label"] == label][0]
rows = []
def ratio(name, f, goal, better_high=True):
    vals = [f(r) for r in rounds]
    med = statistics.median(vals)
    ok = med >= goal if better_high else med <= goal
    rows.append((name, ", ".join(f"{v:.2f}" for v in vals), f"{med:.2f}", ("≥ " if better_high else "≤ ") + str(goal), "met" if ok else "MISSED"))
for op in ("get", "set"):
    ratio(f"{op} ops/s vs async-memcached", lambda r: get(r, f"{op}/evcache", "ops_per_sec") / get(r, f"{op}/async-memcached", "ops_per_sec"), 1.5)
    ratio(f"{op} ops/s vs memcache", lambda r: get(r, f"{op}/evcache", "ops_per_sec") / get(r, f"{op}/memcache", "ops_per_sec"), 3.0)
ratio("get p99 at half peak (ms)", lambda r: get(r, "get-half-peak/evcache", "p99_ms"), 1.0, False)
ratio("replicated set p50 / single set p50", lambda r: get(r, "set-latency/replicated", "p50_ms") / get(r, "set-latency/single", "p50_ms"), 1.3, False)
print()
print("| measure | per round | median | goal | |")
print("|---|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
print("| run (median round) | ops/s | p50 ms | p99 ms | errors |")
print("|---|---|---|---|---|")
labels = sorted({r["label"] for r in rs})
for label in labels:
    vals = [r["run"] for r in rs if r["label"] == label]
    med = sorted(vals, key=lambda v: v["ops_per_sec"])[len(vals) // 2]
    print(f"| {label} | {med['ops_per_sec']:.0f} | {med['p50_ms']:.3f} | {med['p99_ms']:.3f} | {sum(v['errors'] for v in vals)} |")
PY
