#!/usr/bin/env bash
# FaceReko's `eval` and Python face_recognition (dlib, HOG detector) side by side on the same
# folders: CPU and wall time of the whole process, peak memory, and accuracy per group. The two
# take turns, RUNS times (default 3), and the medians are printed with the machine and its load.
#
# Usage: benches/side_by_side.sh [FACEREKO_BINARY [FOLDER...]]
# (default target/release/facereko, on ../shared/facedata's diverse and lfw10; the issue's CPU
# figure is lfw10 alone: benches/side_by_side.sh target/release/facereko ../shared/facedata/lfw10)
# The face_recognition venv is made once in $VENV (default /tmp/facereko-dlib-venv) from PyPI:
# dlib-bin (a prebuilt dlib), face_recognition_models, and face_recognition without its
# dependencies (which would build dlib from source). The models come from FACEREKO_TEST_MODELS
# (default ~/.cache/facereko/models), the pictures from ../shared/facedata beside the repository.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
facereko=${1:-$repo/target/release/facereko}
data=${FACEDATA:-$repo/../shared/facedata}
models=${FACEREKO_TEST_MODELS:-$HOME/.cache/facereko/models}
venv=${VENV:-/tmp/facereko-dlib-venv}
runs=${RUNS:-3}

if ! "$venv/bin/python" -c 'import face_recognition' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet dlib-bin face_recognition_models numpy pillow click
    "$venv/bin/pip" install --quiet --no-deps face_recognition
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
folders=("${@:2}")
[ ${#folders[@]} -gt 0 ] || folders=("$data/diverse" "$data/lfw10")
# The diverse set's table splits its people by group; folders whose people it does not list are
# one group each.
sources=("$data/diverse/README.md" "${folders[@]}")

# Runs a command under GNU time; appends "wall user system max_rss_kib" to $work/<name>.times and
# keeps its output in $work/<name>.json.
timed() {
    local name=$1
    shift
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >"$work/$name.json"
    cat "$work/time" >>"$work/$name.times"
}

for _ in $(seq "$runs"); do
    timed facereko "$facereko" --set "engine.models_dir=$models" eval --json \
        --groups "${sources[@]}"
    timed dlib "$venv/bin/python" "$here/face_recognition_eval.py" "${sources[@]}"
done

python3 - "$work" "$runs" <<'EOF'
import json, os, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
cpu = open("/proc/cpuinfo").read()
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("model name")), "unknown CPU")
print(f"{model}, nproc {os.cpu_count()}, load average {open('/proc/loadavg').read().split()[0]} at the end; "
      f"medians of {runs} alternating runs")

def times(name):
    rows = [list(map(float, line.split())) for line in open(f"{work}/{name}.times")]
    wall, user, system, rss = (statistics.median(column) for column in zip(*rows))
    return wall, user + system, rss / 1024

ours, theirs = json.load(open(f"{work}/facereko.json")), json.load(open(f"{work}/dlib.json"))
pictures = theirs["pictures"]
print(f"{'':<34}{'facereko eval':>18}{'face_recognition (HOG)':>26}")
(w1, c1, r1), (w2, c2, r2) = times("facereko"), times("dlib")
print(f"{'whole process, wall':<34}{w1:>16.2f} s{w2:>24.2f} s")
print(f"{'whole process, CPU (user + sys)':<34}{c1:>16.2f} s{c2:>24.2f} s   ({c2 / c1:.1f}× less CPU)")
print(f"{'CPU per picture (' + str(pictures) + ' pictures)':<34}{1000 * c1 / pictures:>15.0f} ms"
      f"{1000 * c2 / pictures:>23.0f} ms")
print(f"{'peak memory (max RSS)':<34}{r1:>14.0f} MiB{r2:>22.0f} MiB")
print(f"{'pictures without a face':<34}{len(ours['skipped']):>18}{len(theirs['no_face']):>26}")
print("TAR at FAR 1 % / best accuracy per group (a picture without a face fails its pairs):")
mine = {g["name"]: g["metrics"] for g in ours["groups"]}
for group in theirs["groups"]:
    m = mine.get(group["name"])
    left = f"{m['at_far_1_percent']['tar']:.3f} / {m['best_accuracy']:.3f}" if m else "-"
    right = f"{group['tar_at_far_1_percent']:.3f} / {group['best_accuracy']:.3f}"
    print(f"  {group['name']:<32}{left:>18}{right:>26}")
EOF
