#!/usr/bin/env bash
# netflix-zuul against nginx as a keep-alive reverse proxy, side by side in one run, on
# loopback: the same origin (an nginx answering a fixed body), the same client (wrk),
# the same number of proxy workers.
# - nginx: proxy_pass to an upstream block with keepalive, HTTP/1.1 to the origin, and the
#          X-Forwarded-Host and X-Forwarded-Proto fields ours adds (the same work for both).
# - ours:  the gateway with five no-op inbound filters (benches/src/bin/zuulserve.rs), on
#          netflix_zuul::workers::Workers: a single-threaded runtime and listening socket per
#          worker thread, each with its own origin connections, as nginx's worker processes.
#          With one worker, the gateway runs on the main thread's single-threaded runtime:
#          a process of one thread, as an nginx worker process is.
#
#   scripts/bench-zuul.sh [ROUNDS] [SECONDS] [CONNECTIONS] [WORKERS...]   (default 5 6 64 1 2)
#
# Bodies of 0 B and 1 KiB. The two proxies take turns, in the order ABBA (nginx first in odd
# rounds, ours first in even ones), so that a drift of the shared machine's speed falls on
# both alike; each ratio is taken within a round and the median round is reported. Beside
# the throughput, each proxy's CPU time a request (user and system, every thread, from the
# scheduler's own accounting, which leaves out time the hypervisor steals where the kernel
# accounts for it) says how much work each does for the same requests; a busy host still
# moves it, but less than the throughput.
# Goals (issue: netflix-zuul): throughput >= 1.0 x nginx's, and p99 added latency at half
# load <= nginx's;
# 20 no-op filters cost <= 5% of throughput (by the wall clock, and by instructions
# under callgrind, which a noisy machine does not move); <= 16 KiB per idle keep-alive client
# connection (10,000 of them); origin connection reuse >= 99.9% in steady state.
# (The cost of one no-op filter, <= 50 ns, comes from criterion: benches/benches/zuul.rs.)
set -euo pipefail
cd "$(dirname "$0")/.."
# 10,000 idle client connections need the file descriptors.
ulimit -n "$(ulimit -Hn)"
scripts/setup.sh bench >/dev/null
rounds="${1:-5}"; secs="${2:-6}"; conns="${3:-64}"
shift $(( $# < 3 ? $# : 3 ))
workers=("$@"); [ ${#workers[@]} -gt 0 ] || workers=(1 2)
dir="$(pwd)/target/bench-zuul"
mkdir -p "$dir"
# Built as a gateway is built for production: the workspace's `production` profile (release
# with fat LTO and one codegen unit).
cargo build -q --profile production -p benches --bin zuulserve
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$dir/1k"
origin_port=$(free_port)
cat >"$dir/origin.conf" <<NGINX
worker_processes 1; daemon off; pid $dir/origin.pid; error_log $dir/origin.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$origin_port;
    location = /0 { return 200 ""; }
    location = /1k { alias $dir/1k; }
    location = /status { stub_status; } } }
NGINX
nginx -c "$dir/origin.conf" -p "$dir" & pids=($!)
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; exec 8>&- 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

# nginx as a keep-alive reverse proxy to the origin: FILE PORT "MAIN-CONTEXT DIRECTIVES"
proxy_conf() {
  cat >"$1" <<NGINX
daemon off; $3
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 256; }
  server { listen 127.0.0.1:$2;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-Host \$http_host; proxy_set_header X-Forwarded-Proto \$scheme; } } }
NGINX
}

# CPU time (ns) the scheduler has charged to every thread of these processes.
cpu_ns() {
  local p total=0
  for p in "$@"; do
    total=$((total + $(cat /proc/"$p"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}')))
  done
  echo "$total"
}
run() { # label url [more wrk arguments] -> req/s, p99 (ms), non-2xx answers, CPU µs a request
  # ($CPU_PIDS: the proxy's processes, whose CPU time is counted; 0 when unset)
  local label=$1 url=$2; shift 2
  local c0 c1
  c0=$(cpu_ns ${CPU_PIDS:-})
  wrk -t1 -c"$conns" -d"${secs}s" --latency "$@" "$url" >"$dir/$label.txt" 2>&1
  c1=$(cpu_ns ${CPU_PIDS:-})
  python3 - "$dir/$label.txt" "$((c1 - c0))" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
n = int(re.search(r"(\d+) requests in", t).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.1f} {p99:.3f} {errs.group(1) if errs else 0} {int(sys.argv[2]) / 1000 / max(n, 1):.2f}")
PY
}

# One proxy's run, with the worker count's proxies ($w, $proxy_port, $nginx_workers, $ours,
# $ours_pid): who round body [more wrk arguments] -> "req/s p99 non-2xx cpu".
one() {
  local who=$1 round=$2 body=$3; shift 3
  case $who in
    nginx) CPU_PIDS="$nginx_workers" run "nginx-$w-$body-$round" "http://127.0.0.1:$proxy_port/$body" "$@" ;;
    ours) CPU_PIDS="$ours_pid" run "ours-$w-$body-$round" "http://$ours/$body" "$@" ;;
  esac
}

results=()
half_rows=()
for w in "${workers[@]}"; do
  proxy_port=$(free_port)
  proxy_conf "$dir/proxy-$w.conf" "$proxy_port" "worker_processes $w; pid $dir/proxy-$w.pid; error_log $dir/proxy-$w.err warn;"
  nginx -c "$dir/proxy-$w.conf" -p "$dir" & nginx_master=$!; pids+=("$nginx_master")
  rm -f "$dir/ours.in"; mkfifo "$dir/ours.in"
  target/production/zuulserve "127.0.0.1:$origin_port" "$w" 5 <"$dir/ours.in" >"$dir/ours-$w.out" & ours_pid=$!; pids+=("$ours_pid")
  exec 8>"$dir/ours.in"
  for _ in $(seq 1 100); do grep -q READY "$dir/ours-$w.out" 2>/dev/null && break; sleep 0.1; done
  ours=$(awk '/READY/ {print $2}' "$dir/ours-$w.out")
  sleep 0.5
  nginx_workers=$(pgrep -P "$nginx_master" | tr '\n' ' ')
  for round in $(seq 1 "$rounds"); do
    for body in 0 1k; do
      if [ $((round % 2)) -eq 1 ]; then
        read -r nr np ne nc < <(one nginx "$round" "$body")
        read -r or op oe oc < <(one ours "$round" "$body")
      else
        read -r or op oe oc < <(one ours "$round" "$body")
        read -r nr np ne nc < <(one nginx "$round" "$body")
      fi
      echo "workers $w, body $body, round $round: nginx $nr req/s p99 $np ms (non-2xx $ne) cpu $nc µs/req | ours $or req/s p99 $op ms (non-2xx $oe) cpu $oc µs/req" >&2
      results+=("$w $body $nr $np $or $op $ne $oe $nc $oc")
    done
  done
  # p99 at half load: every connection waits between its requests (wrk's `delay`), so
  # that the offered load is about half of nginx's median throughput (0 B bodies); the
  # origin's own p99 at that load is what neither proxy adds.
  half=$(printf '%s\n' "${results[@]}" | awk -v w="$w" '$1 == w && $2 == "0" {print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)] / 2}')
  # wrk waits whole milliseconds and its timers add to the wait, so the load is set by the
  # number of connections instead: each waits 2 ms between requests, and how many give
  # half of nginx's throughput is measured on the origin alone (which adds next to nothing).
  echo "function delay() return 2 end" >"$dir/delay.lua"
  read -r at64 _ _ < <(run "half-$w-calibrate" "http://127.0.0.1:$origin_port/0" -s "$dir/delay.lua")
  full_conns=$conns
  conns=$(python3 -c "print(max(1, round($full_conns * $half / $at64)))")
  echo "half load, $w workers: $conns connections, each waiting 2 ms between requests" >&2
  for round in $(seq 1 "$rounds"); do
    order="origin nginx ours"
    [ $((round % 2)) -eq 1 ] || order="origin ours nginx"
    for who in $order; do
      if [ "$who" = origin ]; then
        read -r hr hp _ hc < <(run "half-$w-origin-$round" "http://127.0.0.1:$origin_port/0" -s "$dir/delay.lua")
      else
        read -r hr hp _ hc < <(one "$who" "half-$round" 0 -s "$dir/delay.lua")
      fi
      half_rows+=("$w $who $round $hr $hp $hc")
    done
  done
  conns=$full_conns
  exec 8>&-
done
# Filter cost, connection reuse and idle memory, on one worker.
accepts() { curl -s "http://127.0.0.1:$origin_port/status" | awk '/^ [0-9]/ {print $1; exit}'; }
filter_rows=()
declare -A faddr fpid
for f in 0 20; do
  rm -f "$dir/f$f.in"; mkfifo "$dir/f$f.in"
  target/production/zuulserve "127.0.0.1:$origin_port" 1 "$f" <"$dir/f$f.in" >"$dir/f-$f.out" & fpid[$f]=$!; pids+=($!)
  eval "exec $((5 + f / 20))>\"$dir/f$f.in\""
  for _ in $(seq 1 100); do grep -q READY "$dir/f-$f.out" 2>/dev/null && break; sleep 0.1; done
  faddr[$f]=$(awk '/READY/ {print $2}' "$dir/f-$f.out")
  run "warm-$f" "http://${faddr[$f]}/0" >/dev/null
done
a0=$(accepts)
# Alternating rounds (ABBA), so that the machine's drift falls on both.
for round in $(seq 1 "$rounds"); do
  order="0 20"
  [ $((round % 2)) -eq 1 ] || order="20 0"
  for f in $order; do
    read -r r _ _ c < <(CPU_PIDS="${fpid[$f]}" run "filters-$f-$round" "http://${faddr[$f]}/0")
    filter_rows+=("$f $r $c")
  done
done
a1=$(accepts)
reqs=$(grep -h -o "[0-9]* requests in" "$dir"/filters-*-*.txt | awk '{s+=$1} END {print s}')
# The status request itself is one accepted connection.
echo "origin accepted $((a1 - a0 - 1)) new connections for $reqs proxied requests" >&2
reuse_line="$((a1 - a0 - 1)) $reqs"
pid=$(pgrep -f "zuulserve 127.0.0.1:$origin_port 1 20" | head -1)
idle_line=$(python3 - "${faddr[20]}" "$pid" <<'PY'
import resource, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
pid = sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
before = rss()
socks = []
for i in range(10000):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /0 HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
for s in socks:
    s.recv(4096)
time.sleep(1.0)
after = rss()
print(f"{len(socks)} {before} {after}")
PY
)
exec 5>&- 6>&-
# Instructions a request, in user space, under callgrind: deterministic where the wall
# clock of a shared machine is not (the same binary and load give the same count). Each
# figure is (total - the same program started and stopped with no request) / requests.
cg_ours() { # filters seconds -> instructions (total) and requests
  local f=$1 s=$2 fifo="$dir/cg-$f.in"
  rm -f "$fifo"; mkfifo "$fifo"
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg-$f-$s.out" \
    target/production/zuulserve "127.0.0.1:$origin_port" 1 "$f" <"$fifo" >"$dir/cg-$f-$s.log" 2>&1 &
  local vp=$!
  exec 7>"$fifo"
  for _ in $(seq 1 200); do grep -q READY "$dir/cg-$f-$s.log" 2>/dev/null && break; sleep 0.1; done
  local n=0
  if [ "$s" -gt 0 ]; then
    n=$(wrk -t1 -c8 -d"${s}s" "http://$(awk '/READY/ {print $2}' "$dir/cg-$f-$s.log")/0" | awk '/requests in/ {print $1}')
  fi
  exec 7>&-
  wait "$vp" || true
  echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/cg-$f-$s.out") $n"
}
cg_nginx() { # seconds -> instructions and requests, nginx proxying with one process
  local s=$1 port; port=$(free_port)
  proxy_conf "$dir/cg-nginx.conf" "$port" "worker_processes 1; master_process off; pid $dir/cg-nginx.pid; error_log $dir/cg-nginx.err warn;"
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg-nginx-$s.out" nginx -c "$dir/cg-nginx.conf" -p "$dir" >/dev/null 2>&1 &
  local vp=$!
  for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$port/0" && break; sleep 0.1; done
  local n=0
  if [ "$s" -gt 0 ]; then
    n=$(wrk -t1 -c8 -d"${s}s" "http://127.0.0.1:$port/0" | awk '/requests in/ {print $1}')
  fi
  kill -QUIT "$vp" 2>/dev/null || true
  wait "$vp" || true
  # (Each readiness probe above is a request too; the baseline run makes the same ones.)
  echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/cg-nginx-$s.out") $n"
}
cg_rows=()
for f in 0 20; do
  cg_rows+=("ours-$f $(cg_ours "$f" 0) $(cg_ours "$f" 6)")
done
cg_rows+=("nginx $(cg_nginx 0) $(cg_nginx 6)")
echo "callgrind: ${cg_rows[*]}" >&2

CALLGRIND="$(printf '%s\n' "${cg_rows[@]}")" FILTERS="$(printf '%s\n' "${filter_rows[@]}")" REUSE="$reuse_line" IDLE="$idle_line" python3 - <<'PY'
import os, statistics
rows = [l.split() for l in os.environ["FILTERS"].splitlines() if l.strip()]
r0 = statistics.median(float(r[1]) for r in rows if r[0] == "0")
r20 = statistics.median(float(r[1]) for r in rows if r[0] == "20")
c0 = statistics.median(float(r[2]) for r in rows if r[0] == "0")
c20 = statistics.median(float(r[2]) for r in rows if r[0] == "20")
cost = 1 - r20 / r0
print(f"| 20 no-op filters | {r0:.0f} req/s without, {r20:.0f} with | cost {cost:.1%} | goal <= 5%: {'met' if cost <= 0.05 else 'MISSED'} |")
print(f"| 20 no-op filters, by CPU time a request | {c0:.2f} µs without, {c20:.2f} with | cost {c20 / c0 - 1:.1%} | |")
new, reqs = map(int, os.environ["REUSE"].split())
reuse = 1 - new / max(reqs, 1)
print(f"| origin connection reuse | {new} new connections for {reqs} requests | {reuse:.4%} | goal >= 99.9%: {'met' if reuse >= 0.999 else 'MISSED'} |")
per_req = {}
for line in os.environ["CALLGRIND"].splitlines():
    name, base, _, total, n = line.split()
    per_req[name] = (int(total) - int(base)) / max(int(n), 1)
i0, i20, ngx = per_req["ours-0"], per_req["ours-20"], per_req["nginx"]
cost = (i20 - i0) / i0
print(f"| instructions a request (callgrind, user space) | ours {i0:.0f} with no filter, {i20:.0f} with 20; nginx {ngx:.0f} | ours/nginx {i0 / ngx:.2f} | |")
print(f"| 20 no-op filters, by instructions | +{i20 - i0:.0f} a request ({(i20 - i0) / 20:.0f} a filter) | cost {cost:.1%} of user space (an upper bound: the kernel's share is not counted) | goal <= 5%: {'met' if cost <= 0.05 else 'MISSED'} |")
n, before, after = map(int, os.environ["IDLE"].split())
per = (after - before) / n
print(f"| idle keep-alive connections | {n} open, RSS {before/2**20:.1f} -> {after/2**20:.1f} MiB | {per/1024:.1f} KiB each | goal <= 16 KiB: {'met' if per <= 16384 else 'MISSED'} |")
PY

HALF="$(printf '%s\n' "${half_rows[@]}")" python3 - <<'PY'
import os, statistics
rows = [l.split() for l in os.environ["HALF"].splitlines() if l.strip()]
print("| proxy workers | offered load (about half of nginx's) | origin alone p99 | nginx p99 (added) | ours p99 (added) | goal: ours added <= nginx's | CPU a request, nginx / ours |")
print("|---:|---|---:|---:|---:|---|---|")
for w in sorted({r[0] for r in rows}, key=int):
    med = lambda who, i: statistics.median(float(r[i]) for r in rows if r[0] == w and r[1] == who)
    o, n, u = med("origin", 4), med("nginx", 4), med("ours", 4)
    print(f"| {w} | nginx {med('nginx', 3):.0f} req/s, ours {med('ours', 3):.0f} req/s | {o:.2f} ms | {n:.2f} ms ({n - o:+.2f}) | {u:.2f} ms ({u - o:+.2f}) | {'met' if u - o <= n - o else 'MISSED'} | {med('nginx', 5):.1f} / {med('ours', 5):.1f} µs |")
PY

RESULTS="$(printf '%s\n' "${results[@]}")" python3 - <<'PY'
import os, statistics
rows = [l.split() for l in os.environ["RESULTS"].splitlines() if l.strip()]
print("| proxy workers | body | nginx req/s | ours req/s | ratio (goal >= 1.0) | rounds' ratios | nginx p99 | ours p99 | CPU a request, nginx / ours |")
print("|---:|---|---:|---:|---:|---|---:|---:|---|")
for w in sorted({r[0] for r in rows}, key=int):
    for body in ("0", "1k"):
        rs = [r for r in rows if r[0] == w and r[1] == body]
        if not rs: continue
        ratio = statistics.median(float(r[4]) / float(r[2]) for r in rs)
        med = lambda i: statistics.median(float(r[i]) for r in rs)
        each = " ".join(f"{float(r[4]) / float(r[2]):.2f}" for r in rs)
        print(f"| {w} | {'0 B' if body == '0' else '1 KiB'} | {med(2):.0f} | {med(4):.0f} | {ratio:.2f} {'met' if ratio >= 1.0 else 'MISSED'} | {each} | {med(3):.2f} ms | {med(5):.2f} ms | {med(8):.1f} / {med(9):.1f} µs ({med(9) / med(8):.2f}) |")
PY
