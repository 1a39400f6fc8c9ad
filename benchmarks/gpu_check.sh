#!/usr/bin/env bash
# GPU device check for vidstyle, on the machine's own python3 and packages, in at most
# 9 minutes (GPU_CHECK_BUDGET, seconds). Writes JSON to the folder given as the first
# argument, else $OUT, else benchmarks/results/gpu-check-<time>/; gpu_check.json gathers
# every step and is rewritten after each one, so a run cut short still reports:
#   carry.json      bytes of the tree and of the carried wheels against the 64 MiB a device run takes
#   system.json     GPUs, driver, library versions, onnxruntime providers, engines --engine auto sees
#   parity.json     each GPU engine against the CPU onnxruntime fp32 reference on 4 real frames of
#                   samples/cup.mp4 at 1280x720 and at 1279x719 (padded and cropped on the device)
#   engine.json     inference only (frames in memory): fps per engine x precision x 720p/1080p x
#                   batch 1/4/8, run() one batch at a time and stream() with two batches in flight
#   transcode.json  samples/cup.mp4 upscaled to 1080p, transcoded end to end with the torch engine,
#                   batch 8, --temporal off, x264 veryfast: fps, ms per frame per stage, the bound
#   live.json       a synthetic 1080p camera at 60 fps through the live scheduler: fps, drops, p95
#   steps.txt       each step's exit status, seconds and limit; *.log each step's output
#
# Usage (repository root):
#   bash benchmarks/gpu_check.sh [OUTDIR]            # on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run [OUTDIR]  # anywhere: every step on the CPU engines at
#                                                    # small sizes (make test runs this)
#
# What the machine lacks comes as wheels in .whl/ (ignored by git: carry it with the tree),
# installed with --no-index into a folder of their own, never over the machine's packages.
# For a Python 3.12 machine without PyAV and tqdm (about 35 MB):
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl av tqdm
set -uo pipefail

DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RESULTS="${1:-${OUT:-$ROOT/benchmarks/results/gpu-check-$(date +%Y%m%d-%H%M%S)}}"
mkdir -p "$RESULTS"
: > "$RESULTS/steps.txt"
BUDGET="${GPU_CHECK_BUDGET:-540}"
CARRY_LIMIT=$((64 * 1024 * 1024))
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export VIDSTYLE_CACHE="${VIDSTYLE_CACHE:-/tmp/vidstyle-gpu-check-cache}"
START=$(date +%s)

say() { echo "[gpu_check $(( $(date +%s) - START ))s] $*"; }

if [[ $DRY == 1 && -x "$ROOT/.venv/bin/python" ]]; then PY="${PYTHON:-$ROOT/.venv/bin/python}"; else PY="${PYTHON:-python3}"; fi
say "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"

summary() { "$PY" benchmarks/gpu_check.py summary --dir "$RESULTS" > /dev/null 2>&1; }

# step NAME LIMIT COMMAND...: runs within its limit and what is left of the budget, logs,
# records, never stops the run; a step that no longer fits is recorded as skipped.
step() {
    local name=$1 limit=$2; shift 2
    local left=$(( BUDGET - ($(date +%s) - START) - 5 ))
    (( left < limit )) && limit=$left
    if (( limit < 10 )); then
        say "$name: skipped, ${left}s of the budget left"
        echo "$name skipped 0 0" >> "$RESULTS/steps.txt"
        summary
        return
    fi
    local t0=$(date +%s)
    say "$name (limit ${limit}s)"
    timeout "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    local rc=$?
    say "$name: exit $rc in $(( $(date +%s) - t0 ))s"
    [[ $rc == 0 ]] || tail -3 "$RESULTS/$name.log"
    echo "$name $rc $(( $(date +%s) - t0 )) $limit" >> "$RESULTS/steps.txt"
    summary
}

# --- what travels: the tree (what git tracks or would) and the wheels --------------------
carry() {
    local tree wheels=0
    if git -C "$ROOT" rev-parse --git-dir > /dev/null 2>&1; then
        tree=$(git -C "$ROOT" ls-files -z -co --exclude-standard | (cd "$ROOT" && xargs -0 du -cb 2>/dev/null) \
            | awk 'END {print $1}')
    else  # a copy without .git: everything but the results of earlier runs
        tree=$(du -sb --exclude=.whl --exclude="$(basename "$RESULTS")" "$ROOT" | cut -f1)
    fi
    if compgen -G "$ROOT/.whl/*.whl" > /dev/null; then wheels=$(du -cb "$ROOT"/.whl/*.whl | awk 'END {print $1}'); fi
    local total=$(( tree + wheels ))
    printf '{"tree_bytes": %d, "wheels_bytes": %d, "total_bytes": %d, "limit_bytes": %d, "fits": %s}\n' \
        "$tree" "$wheels" "$total" "$CARRY_LIMIT" "$( (( total <= CARRY_LIMIT )) && echo true || echo false)" \
        > "$RESULTS/carry.json"
    cat "$RESULTS/carry.json"
    (( total <= CARRY_LIMIT ))
}
export ROOT RESULTS CARRY_LIMIT
export -f carry
step carry 30 bash -c carry

# --- packages the machine lacks, from .whl/ into a folder of their own ----------------------
VENDOR="${VENDOR:-/tmp/vidstyle-gpu-check-vendor}"
missing=()
for module in av tqdm; do
    "$PY" -c "import $module" 2> /dev/null || missing+=("$module")
done
if (( ${#missing[@]} )); then
    say "installing ${missing[*]} from $ROOT/.whl into $VENDOR"
    "$PY" -m pip install -q --no-index --find-links "$ROOT/.whl" --target "$VENDOR" "${missing[@]}" \
        > "$RESULTS/install.log" 2>&1 || { say "install failed: $RESULTS/install.log"; tail -3 "$RESULTS/install.log"; }
    export PYTHONPATH="$PYTHONPATH:$VENDOR"  # after the machine's own packages: nothing is hidden
fi

if [[ $DRY == 1 ]]; then
    # The GPU engines must answer with their one-line errors here; the CPU ones compute.
    PARITY_ENGINES="onnxruntime:fp32,torch:fp32,torch:bf16,tensorrt:fp16,onnxruntime-cuda:fp32"
    PARITY_SIZE=160x96,157x93; PARITY_FRAMES=2
    SWEEP_ENGINES="onnxruntime:fp32,torch:fp32,tensorrt:fp16"; SIZES=160x96; BATCHES=1,2; SWEEP_FRAMES=4; SWEEP_SECONDS=0
    CLIP_SIZE=320x180; CLIP_FRAMES=16; T_ENGINE=onnxruntime; T_BATCH=2
    LIVE_ENGINE=onnxruntime; LIVE_SIZE=160x96; LIVE_RATE=30; LIVE_SECONDS=2; LIVE_WARMUP=1
else
    PARITY_ENGINES="torch:fp16,torch:bf16,torch:fp32,tensorrt:fp16,tensorrt:fp32,onnxruntime-cuda:fp32"
    PARITY_SIZE=1280x720,1279x719; PARITY_FRAMES=4
    SWEEP_ENGINES="torch:fp16,torch:bf16,torch:fp32,tensorrt:fp16,onnxruntime-cuda:fp32"
    SIZES=1280x720,1920x1080; BATCHES=1,4,8; SWEEP_FRAMES=64; SWEEP_SECONDS=1
    CLIP_SIZE=1920x1080; CLIP_FRAMES=0; T_ENGINE=torch; T_BATCH=8
    LIVE_ENGINE=torch; LIVE_SIZE=1920x1080; LIVE_RATE=60; LIVE_SECONDS=10; LIVE_WARMUP=8
    nvidia-smi > "$RESULTS/nvidia-smi.txt" 2>&1 || say "nvidia-smi failed (no driver?)"
fi

step system 40 "$PY" benchmarks/gpu_check.py system --json "$RESULTS/system.json"
step parity 100 "$PY" benchmarks/gpu_check.py parity --engines "$PARITY_ENGINES" --size "$PARITY_SIZE" \
    --frames "$PARITY_FRAMES" --json "$RESULTS/parity.json"
step engine 150 "$PY" benchmarks/gpu_check.py engine --engines "$SWEEP_ENGINES" --batch "$BATCHES" --size "$SIZES" \
    --frames "$SWEEP_FRAMES" --seconds "$SWEEP_SECONDS" --json "$RESULTS/engine.json"
step make-clip 60 "$PY" benchmarks/gpu_check.py make-clip --size "$CLIP_SIZE" --max-frames "$CLIP_FRAMES" \
    --out "$RESULTS/cup-$CLIP_SIZE.mp4" --json "$RESULTS/make-clip.json"
step transcode 100 "$PY" benchmarks/gpu_check.py transcode --input "$RESULTS/cup-$CLIP_SIZE.mp4" \
    --output "$RESULTS/cup-$CLIP_SIZE-$T_ENGINE.mp4" --engine "$T_ENGINE" --batch "$T_BATCH" --preset veryfast \
    --json "$RESULTS/transcode.json"
step live 40 "$PY" benchmarks/gpu_check.py live --engine "$LIVE_ENGINE" --size "$LIVE_SIZE" --rate "$LIVE_RATE" \
    --seconds "$LIVE_SECONDS" --warmup "$LIVE_WARMUP" --json "$RESULTS/live.json"
rm -f "$RESULTS"/cup-*.mp4  # the clips are large; the figures are in the JSON

summary
say "done in $(( $(date +%s) - START ))s; results in $RESULTS/gpu_check.json"
cat "$RESULTS/steps.txt"
# The exit status says whether every step ran to its end (an engine's error inside a step is a result).
! grep -qv " 0 " "$RESULTS/steps.txt"
