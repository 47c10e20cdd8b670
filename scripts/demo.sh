#!/usr/bin/env bash
# The README's run command: the platform's main example, with its own set-up.
# Until examples/full_stack exists this is netflix-hystrix's demo; extra arguments pass on
# (try --keep-serving to keep the dashboard up).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
exec cargo run --release --example hystrix_demo -- "$@"
