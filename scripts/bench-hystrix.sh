#!/usr/bin/env bash
# Measures netflix-hystrix's circuit breaker against failsafe, recloser, tower-resilience
# and a bare tower service, in one run, and prints the table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh bench
rm -rf target/criterion/breaker_closed target/criterion/breaker_open
cargo bench -p benches --bench breaker
echo
echo "machine: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | xargs || uname -m), $(nproc) cores"
echo "rustc: $(rustc --version)"
echo "date: $(date -u +%Y-%m-%d)"
cargo run -q -p benches --bin report
