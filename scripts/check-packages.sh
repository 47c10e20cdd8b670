#!/usr/bin/env bash
# Every library crate packages on its own, and ships only its own files.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo package --workspace --no-verify --allow-dirty -q
for dir in netflix-*/; do
  crate="${dir%/}"
  files=$(cargo package -p "$crate" --list --allow-dirty 2>/dev/null)
  for required in Cargo.toml README.md CHANGELOG.md LICENSE src/lib.rs; do
    grep -qx "$required" <<<"$files" || { echo "$crate: package lacks $required" >&2; exit 1; }
  done
  if grep -E '^\.\.|^(examples|benches|scripts)/.*' <<<"$files" | grep -v '^examples/' | grep -q .; then
    echo "$crate: package lists files outside the crate:" >&2; exit 1
  fi
  echo "    $crate: $(wc -l <<<"$files") files"
done
