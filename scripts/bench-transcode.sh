#!/usr/bin/env bash
# Measures netflix-transcode against the single-process ffmpeg ladder, side by side in one
# run: a 20 s 1080p source (Big Buck Bunny, looped and upscaled), a 4-rung x264 ladder.
#
#   scripts/bench-transcode.sh [PRESET] [ROUNDS]     (default: medium 3)
#
# The two run alternately ROUNDS times (the machine is shared and its speed drifts), in the
# order ABBA; each ratio is taken within a round, and the median round is reported.
# ours: the `transcode` example (chunks in parallel workers, validation, merge, CMAF
#       packaging), video only, no quality measurement.
# peer: one ffmpeg process that decodes once and encodes the same ladder through a split
#       filter, with the same x264 settings and ffmpeg's default threads.
# Goals: ours wall <= 1.10 x (ours CPU / cores); ours CPU <= 1.05 x peer CPU;
#        ours wall <= peer wall.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test >/dev/null
preset="${1:-medium}"
rounds="${2:-3}"
dir=target/bench-transcode
mkdir -p "$dir"
src="$dir/src-1080p-20s.mp4"
if [ ! -s "$src" ]; then
  echo "making the 20 s 1080p source" >&2
  ffmpeg -nostdin -v error -y -stream_loop 4 -i target/test-data/bigbuckbunny.mp4 -t 20 \
    -vf scale=1920:1080:flags=lanczos -an -c:v libx264 -preset slow -crf 14 -g 50 \
    -keyint_min 50 -sc_threshold 0 "$src"
fi
cargo build -q --release -p netflix-transcode --example transcode
cores=$(nproc)
seg=2
# 25 fps source: a keyframe every 2 s is 50 frames.
gop=50
rungs="1080@5000,720@3000,540@1600,360@800"

# Same x264 settings as netflix-transcode's capped CRF (crf 23, maxrate 1.5x, bufsize 2x).
x264() { # kbps
  local k=$1
  echo "-c:v libx264 -preset $preset -g $gop -keyint_min $gop -sc_threshold 0 -force_key_frames expr:eq(mod(n,$gop),0) -x264-params open-gop=0:scenecut=0 -crf 23 -maxrate $((k*3/2))k -bufsize $((k*2))k -pix_fmt yuv420p"
}

# Wall and CPU seconds (user + system of the command and every process it waited for).
measure() { # label, command...
  local label=$1; shift
  python3 - "$dir/$label.log" "$@" <<'PY'
import resource, subprocess, sys, time
log, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
with open(log, "w") as err:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, check=True)
wall = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.2f} {r.ru_utime + r.ru_stime:.2f}")
PY
}

peer() {
  exec ffmpeg -nostdin -v error -y -i "$src" -filter_complex \
    "[0:v]split=4[a][b][c][d];[a]scale=1920:1080:flags=bicubic[o0];[b]scale=1280:720:flags=bicubic[o1];[c]scale=960:540:flags=bicubic[o2];[d]scale=640:360:flags=bicubic[o3]" \
    -map "[o0]" $(x264 5000) "$dir/peer-1080.mp4" \
    -map "[o1]" $(x264 3000) "$dir/peer-720.mp4" \
    -map "[o2]" $(x264 1600) "$dir/peer-540.mp4" \
    -map "[o3]" $(x264 800) "$dir/peer-360.mp4"
}

ours() {
  rm -rf "$dir/ours"
  target/release/examples/transcode "$src" --out "$dir/ours" --rungs "$rungs" --codec x264 \
    --preset "$preset" --segment-seconds $seg --workers "$cores" --no-audio --no-quality --json
}

export -f peer ours x264
export src dir preset gop seg rungs cores
echo "source: $src ($(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=width,height,r_frame_rate,nb_read_packets -of csv=p=0 "$src")), preset $preset, $cores cores, $rounds rounds" >&2
results=()
for round in $(seq 1 "$rounds"); do
  # ABBA: the peer first in odd rounds, ours first in even ones, so that a drift of the
  # machine's speed falls on both alike.
  if [ $((round % 2)) -eq 1 ]; then
    read -r pw pc < <(measure peer bash -c peer)
    read -r ow oc < <(measure ours bash -c ours)
  else
    read -r ow oc < <(measure ours bash -c ours)
    read -r pw pc < <(measure peer bash -c peer)
  fi
  echo "round $round: peer wall ${pw}s cpu ${pc}s | ours wall ${ow}s cpu ${oc}s" >&2
  results+=("$pw $pc $ow $oc")
done
RESULTS="$(printf '%s\n' "${results[@]}")" python3 - "$cores" <<'PY'
import os, statistics, sys
cores = float(sys.argv[1])
rounds = [tuple(map(float, l.split())) for l in os.environ["RESULTS"].splitlines() if l.strip()]
def ratios(r):
    pw, pc, ow, oc = r
    return (ow / (oc / cores), oc / pc, ow / pw)
rs = [ratios(r) for r in rounds]
goals = [("ours wall / (ours CPU / cores)", 1.10), ("ours CPU / peer CPU", 1.05), ("ours wall / peer wall", 1.00)]
ok = True
for i, (name, goal) in enumerate(goals):
    vals = [r[i] for r in rs]
    med = statistics.median(vals)
    good = med <= goal
    ok &= good
    print(f"{name:34s} median {med:6.3f} (rounds {' '.join(f'{v:.3f}' for v in vals)})  goal <= {goal:.2f} {'ok' if good else 'MISSED'}")
for k, (pw, pc, ow, oc) in enumerate(rounds, 1):
    print(f"round {k}: peer wall {pw:.2f} s CPU {pc:.2f} s; ours wall {ow:.2f} s CPU {oc:.2f} s")
sys.exit(0 if ok else 1)
PY
