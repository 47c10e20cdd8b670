#!/usr/bin/env bash
# Installs the system packages a task needs, when they are missing.
#
#   scripts/setup.sh test|demo|bench
#
# Debian/Ubuntu: apt-get (through sudo when not root). macOS: Homebrew. Anywhere else it
# prints exactly what to install and exits non-zero. Nothing is installed twice: each
# requirement is a command that must be on PATH, and only missing ones are installed.
set -euo pipefail

task="${1:-test}"

# command:debian-package:brew-package, per task.
common=("cc:gcc:gcc")
# netflix-evcache's tests, benchmarks and the full stack start their own memcached.
cache=("memcached:memcached:memcached")
media=("ffmpeg:ffmpeg:ffmpeg" "ffprobe:ffmpeg:ffmpeg")
# netflix-oca's serving benchmark: nginx (the peer) and wrk (the load).
cdn=("nginx:nginx:nginx" "wrk:wrk:wrk" "curl:curl:curl")
# netflix-zuul's benchmark also counts instructions per request under callgrind.
profile=("valgrind:valgrind:valgrind")
# The real-player tests: headless Chromium with hls.js from npm; python3 fetches clips.
# The full stack (the demo) serves its page with hls.js too, and ingests a clip.
assets_tools=("npm:npm:node" "pip3:python3-pip:python")
player=("chromium:chromium:chromium" "${assets_tools[@]}")
case "$task" in
  test)  reqs=("${common[@]}" "${media[@]}" "${player[@]}" "${cache[@]}") ;;
  demo)  reqs=("${common[@]}" "${media[@]}" "${assets_tools[@]}" "${cache[@]}") ;;
  bench) reqs=("${common[@]}" "${cache[@]}" "${cdn[@]}" "${profile[@]}") ;;
  *) echo "usage: scripts/setup.sh test|demo|bench" >&2; exit 2 ;;
esac

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not on PATH: install Rust first (https://rustup.rs)" >&2
  exit 1
fi

missing_cmds=(); debs=(); brews=()
for r in "${reqs[@]}"; do
  IFS=: read -r cmd deb brew <<<"$r"
  if ! command -v "$cmd" >/dev/null 2>&1; then
    missing_cmds+=("$cmd"); debs+=("$deb"); brews+=("$brew")
  fi
done

# Project-local assets (in target/, which git ignores): hls.js and the real clips.
assets() {
  [ "$task" = test ] || [ "$task" = demo ] || return 0
  if [ ! -s target/js/node_modules/hls.js/dist/hls.min.js ]; then
    echo "setup: installing hls.js into target/js" >&2
    npm install --prefix target/js hls.js@1.7.4 --no-audit --no-fund --silent >&2
  fi
  scripts/fetch-test-clips.sh
}
cd "$(dirname "$0")/.."

if [ ${#missing_cmds[@]} -eq 0 ]; then
  assets
  exit 0
fi

echo "setup: missing ${missing_cmds[*]}; installing" >&2
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "setup: not root and no sudo; run as root: apt-get install -y ${debs[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # One package can provide several commands (ffmpeg, ffprobe): install each once.
  read -r -a debs <<<"$(printf '%s\n' "${debs[@]}" | sort -u | tr '\n' ' ')"
  $sudo apt-get install -y -qq --no-install-recommends "${debs[@]}"
elif [ "$(uname -s)" = "Darwin" ] && command -v brew >/dev/null 2>&1; then
  read -r -a brews <<<"$(printf '%s\n' "${brews[@]}" | sort -u | tr '\n' ' ')"
  brew install "${brews[@]}"
else
  echo "setup: cannot install automatically on this system; please install: ${debs[*]}" >&2
  echo "       (Debian/Ubuntu: apt-get install -y ${debs[*]}; macOS: brew install ${brews[*]})" >&2
  exit 1
fi

for cmd in "${missing_cmds[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "setup: $cmd still missing after install" >&2; exit 1; }
done
assets
