#!/usr/bin/env bash
# netflix-oca's segment server against nginx, side by side in one run, on loopback:
# the same 2 MiB segment files, the same client (wrk), one server worker each.
# - nginx: sendfile on, keep-alive, access log off, one worker process.
# - ours:  an edge appliance (one tokio worker) serving the files from its memory tier
#          (benches/src/bin/ocaserve.rs warms it first).
# Two loads: whole 2 MiB segments, and random ranges of 64-512 KiB within them.
#
#   scripts/bench-oca-serve.sh [ROUNDS] [SECONDS] [CONNECTIONS]   (default 3 10 32)
#
# Goals (issue: netflix-oca): throughput >= 0.8 x nginx's, p99 <= 2 x nginx's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh bench >/dev/null
rounds="${1:-3}"; secs="${2:-10}"; conns="${3:-32}"
dir="$(pwd)/target/bench-oca-serve"
mkdir -p "$dir/files" "$dir/nginx"
files=64
if [ ! -s "$dir/files/seg-063.m4s" ]; then
  for i in $(seq 0 $((files - 1))); do
    head -c $((2 * 1024 * 1024)) /dev/urandom >"$dir/files/$(printf 'seg-%03d.m4s' "$i")"
  done
fi
chmod -R a+rX "$dir"
cargo build -q --release -p benches --bin ocaserve

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65; keepalive_requests 1000000;
  access_log off;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$port; root $dir/files; location / { } }
}
NGINX
nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" &
nginx_pid=$!
# Ours: reads stdin until closed; a fifo keeps it open.
rm -f "$dir/ours.in"; mkfifo "$dir/ours.in"
target/release/ocaserve "$dir/files" 1 <"$dir/ours.in" >"$dir/ours.out" &
ours_pid=$!
exec 7>"$dir/ours.in"
cleanup() { exec 7>&- || true; kill "$nginx_pid" "$ours_pid" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q READY "$dir/ours.out" 2>/dev/null && break; sleep 0.1; done
ours_addr=$(awk '/READY/ {print $2}' "$dir/ours.out")
[ -n "$ours_addr" ] || { echo "ocaserve did not start" >&2; exit 1; }
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/seg-000.m4s" 2>/dev/null && break; sleep 0.1; done
# Warm nginx's page cache too.
for f in "$dir"/files/*; do cat "$f" >/dev/null; done

cat >"$dir/segments.lua" <<'LUA'
math.randomseed(7)
request = function()
  return wrk.format("GET", string.format("/seg-%03d.m4s", math.random(0, 63)))
end
LUA
cat >"$dir/ranges.lua" <<'LUA'
math.randomseed(7)
request = function()
  local len = math.random(64 * 1024, 512 * 1024)
  local start = math.random(0, 2 * 1024 * 1024 - len)
  return wrk.format("GET", string.format("/seg-%03d.m4s", math.random(0, 63)), { ["Range"] = "bytes=" .. start .. "-" .. (start + len - 1) })
end
LUA

run() { # label url script
  wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$dir/$3.lua" "$2" >"$dir/$1.txt" 2>&1
  python3 - "$dir/$1.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
m = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
sock = re.search(r"Socket errors: (.*)", t)
print(f"{rps:.1f} {ms(*m.groups()):.3f} {errs.group(1) if errs else 0} {'yes' if sock else 'no'}")
PY
}

echo "files: $files x 2 MiB; wrk -t1 -c$conns -d${secs}s; $rounds rounds; nginx $(nginx -v 2>&1 | sed 's/.*\///'); $(nproc) cores" >&2
results=()
for round in $(seq 1 "$rounds"); do
  for load in segments ranges; do
    read -r nr np ne ns < <(run "nginx-$load-$round" "http://127.0.0.1:$port" "$load")
    read -r or op oe os < <(run "ours-$load-$round" "http://$ours_addr" "$load")
    echo "round $round $load: nginx $nr req/s p99 ${np} ms (errors $ne) | ours $or req/s p99 ${op} ms (errors $oe)" >&2
    results+=("$load $nr $np $or $op $ne $oe")
  done
done
RESULTS="$(printf '%s\n' "${results[@]}")" python3 - <<'PY'
import os, statistics, sys
rows = [l.split() for l in os.environ["RESULTS"].splitlines() if l.strip()]
ok = True
print("| load | nginx req/s | ours req/s | throughput ratio (goal >= 0.8) | nginx p99 | ours p99 | p99 ratio (goal <= 2) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for load in ("segments", "ranges"):
    rs = [r for r in rows if r[0] == load]
    nr = statistics.median(float(r[1]) for r in rs); orr = statistics.median(float(r[3]) for r in rs)
    np_ = statistics.median(float(r[2]) for r in rs); op = statistics.median(float(r[4]) for r in rs)
    tr = statistics.median(float(r[3]) / float(r[1]) for r in rs)
    pr = statistics.median(float(r[4]) / float(r[2]) for r in rs)
    errors = sum(int(r[5]) + int(r[6]) for r in rs)
    good = tr >= 0.8 and pr <= 2.0 and errors == 0
    ok &= good
    print(f"| {load} | {nr:.0f} | {orr:.0f} | {tr:.2f} {'met' if tr >= 0.8 else 'MISSED'} | {np_:.2f} ms | {op:.2f} ms | {pr:.2f} {'met' if pr <= 2 else 'MISSED'} |")
sys.exit(0 if ok else 1)
PY
