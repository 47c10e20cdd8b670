#!/usr/bin/env bash
# The README's run command: the whole platform on one machine (examples/full_stack), with
# its own set-up first (ffmpeg, memcached, hls.js and the Big Buck Bunny clip when missing).
# Extra arguments pass on: try --serve to keep the page (hls.js player and live dashboard)
# up after the run, or --speed 4 for a faster fleet; --help lists them all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
exec cargo run --release --example full_stack -- "$@"
