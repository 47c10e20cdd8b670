#!/usr/bin/env bash
# The project's test command (README quick start, and CI through .ci/run): format, lints,
# the whole test suite, loom models, docs, benchmarks built, examples run, packages built.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test

step() {
  local name="$1"; shift
  local t0=$SECONDS
  echo "==> $name"
  "$@"
  echo "    $name: ok ($((SECONDS - t0)) s)"
}

step "format" cargo fmt --all -- --check
step "clippy" cargo clippy --workspace --all-targets --all-features -- -D warnings
step "tests" cargo test --workspace --all-features
step "features" bash -c 'for f in "" serde stream; do cargo check -q -p netflix-hystrix --no-default-features --features "$f" || exit 1; done; for f in "" serde; do cargo check -q -p netflix-abr --no-default-features --features "$f" || exit 1; cargo check -q -p netflix-evcache --no-default-features --features "$f" || exit 1; done; cargo check -q -p netflix-oca --no-default-features; cargo check -q -p netflix-zuul --no-default-features; cargo check -q -p netflix-zuul --features tls'
step "loom models" env RUSTFLAGS="--cfg netflix_loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p netflix-hystrix --release --lib loom
step "docs" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps
step "benches build" cargo bench --workspace --no-run
step "example: breaker" cargo run -q -p netflix-hystrix --example breaker
step "example: hystrix_demo" cargo run -q --release --example hystrix_demo -- --duration 8 --rps 150
step "example: abr_sim" bash -c 'd=netflix-abr/tests/data; cargo run -q --release -p netflix-abr --example abr_sim -- --traces $d/traces --video-sizes $d/video_sizes --algorithm default --pensieve-compat --json --plot target/abr_sim.svg --trace-name trace_5294_http---www.youtube.com && cargo run -q --release -p netflix-abr --example abr_sim -- --list-algorithms >/dev/null'
step "example: transcode" bash -c 'rm -rf target/transcode-example && cargo run -q --release -p netflix-transcode --example transcode -- target/test-data/bigbuckbunny.mp4 --out target/transcode-example --ladder envivio --preset veryfast && test -s target/transcode-example/master.m3u8 && test -s target/transcode-example/manifest.mpd'
step "example: locate" bash -c 'out=$(printf "test\\ndustin\\n" | cargo run -q --release -p netflix-evcache --example locate -- --servers 10.0.1.1:11211,10.0.1.2:11211,10.0.1.3:11211 --mode spymemcached) && test "$(echo "$out" | wc -l)" = 2 && echo "$out"'
step "example: cache_replay" bash -c 'out=$(cargo run -q --release -p netflix-oca --example cache_replay -- --trace netflix-oca/tests/data/adapt_size_request.trace.xz --format adapt --policy default --capacity-fraction 0.05 --json) && echo "$out" && python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert sorted(d)==[\"byte_miss_ratio\",\"capacity_fraction\",\"miss_ratio\",\"policy\",\"requests\"] and d[\"requests\"]==66987 and 0<d[\"miss_ratio\"]<1" "$out"'
step "example: cluster" cargo run -q --release -p netflix-oca --example cluster
step "example: full_stack (16 s of video, 12 players at 4x; reuses the tests' ingest)" bash -c 'cargo run -q --release --example full_stack -- --seconds 16 --players 12 --speed 4 --work target/full-stack-test >target/full-stack-ci.log 2>&1 || { cat target/full-stack-ci.log; exit 1; }; grep -q "killed while serving" target/full-stack-ci.log && grep -q "zone-a killed; s-1 still plays: 200" target/full-stack-ci.log && grep -q " 0 player errors" target/full-stack-ci.log && test -s target/full-stack-test/report.html && sed -n "/players, by algorithm/,/^fleet:/p" target/full-stack-ci.log' 
step "example: gateway" bash -c 'cargo build -q --release -p netflix-zuul --example gateway && out=$(mktemp) && (target/release/examples/gateway --routes netflix-zuul/examples/routes.json --listen 127.0.0.1:0 --duration 4 >"$out" 2>&1 &) && for _ in $(seq 50); do grep -q "listening on" "$out" && break; sleep 0.1; done && url=$(grep -o "http://[0-9.:]*" "$out" | head -1) && python3 -c "
import sys, urllib.request, urllib.error
def status(path, ua=\"probe\"):
    try:
        return urllib.request.urlopen(urllib.request.Request(sys.argv[1] + path, headers={\"User-Agent\": ua}), timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
assert status(\"/healthz\") == 200 and status(\"/healthz\", \"BadBot/1\") == 403 and status(\"/nowhere\") == 404
print(\"gateway: /healthz 200, BadBot 403, /nowhere 404\")
" "$url" && sleep 4 && grep -q "drained" "$out"'
step "packages" scripts/check-packages.sh
echo "all checks passed"
