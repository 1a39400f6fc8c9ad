#!/usr/bin/env bash
# GPU device check for vidstyle: about 5 minutes on a bare NVIDIA machine with no
# network. Writes JSON to the folder given as the first argument, else $OUT, else
# benchmarks/results/gpu-check-<time>/:
#   system.json     GPUs, driver, library versions, providers, engines --engine auto sees
#   parity.json     tensorrt fp16/fp32, onnxruntime-cuda, tf vs the CPU onnxruntime fp32
#                   reference on 4 real frames of samples/cup.mp4 at 1280x720
#   engine.json     inference only (frames in memory): fps per engine x batch 1/4/8 x 720p/1080p,
#                   run() one batch at a time and stream() with two batches in flight
#   bench-E.json    `vidstyle bench`, per engine E: the same grid as real transcodes of synthetic clips
#                   (fps, latency, per-stage time)
#   transcode.json  an end-to-end 1080p transcode (samples/cup.mp4 upscaled) with tensorrt,
#                   batch 8, --temporal off, the stage breakdown and the stage that bounds it
#   *.log           each step's output
#
# Usage (repository root):
#   bash benchmarks/gpu_check.sh [OUTDIR]            # on the NVIDIA machine
#   bash benchmarks/gpu_check.sh --dry-run [OUTDIR]  # here, CPU only: every step with the CPU
#                                                    # engines, small sizes; GPU engines must
#                                                    # fail with their one-line errors
#
# Python packages come as wheels in .whl/ (ignored by git through .git/info/exclude: add
# the line `.whl/` there). Made on a machine with network, for Python 3.12 on x86-64 Linux:
#
#   pip download -d .whl --python-version 3.12 --implementation cp --abi cp312 \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       --only-binary=:all: --extra-index-url https://pypi.nvidia.com \
#       'tensorflow-cpu>=2.16' 'keras>=3.0' 'numpy>=1.26' 'av>=14' opencv-python-headless 'tqdm>=4.60' \
#       'onnx>=1.15' 'onnxruntime-gpu[cuda,cudnn]>=1.23,<1.25' \
#       'tensorrt-cu12-bindings>=10,<12' 'tensorrt-cu12-libs>=10,<12' 'cuda-python>=12.3,<13'
#
# (tensorrt-cu12, what `pip install 'vidstyle[gpu]'` names, is a source package that pulls
# those two wheels at install time, so the offline set names them directly.
# opencv-python-headless instead of opencv-python: a bare machine has no libGL. Several GB,
# mostly TensorRT's and cuDNN's libraries.) vidstyle itself is not installed: it runs from
# the checkout through PYTHONPATH.
set -uo pipefail

DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RESULTS="${1:-${OUT:-$ROOT/benchmarks/results/gpu-check-$(date +%Y%m%d-%H%M%S)}}"
mkdir -p "$RESULTS"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export VIDSTYLE_CACHE="${VIDSTYLE_CACHE:-/tmp/vidstyle-gpu-check-cache}"
START=$(date +%s)

say() { echo "[gpu_check $(( $(date +%s) - START ))s] $*"; }

# --- Python -------------------------------------------------------------------------------
if [[ $DRY == 1 ]]; then
    PY="${PYTHON:-$ROOT/.venv/bin/python}"
    [[ -x "$PY" ]] || PY=python3
else
    PY_BASE="${PYTHON:-python3.12}"
    VENV="${VENV:-/tmp/vidstyle-gpu-venv}"
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "venv $VENV from $ROOT/.whl (no network)"
        "$PY_BASE" -m venv "$VENV" || exit 2
        "$VENV/bin/python" -m pip install -q --no-index --find-links "$ROOT/.whl" \
            tensorflow-cpu keras numpy av opencv-python-headless tqdm onnx 'onnxruntime-gpu[cuda,cudnn]' \
            tensorrt-cu12-bindings tensorrt-cu12-libs cuda-python > "$RESULTS/install.log" 2>&1 \
            || { say "offline install failed: $RESULTS/install.log"; tail -5 "$RESULTS/install.log"; exit 2; }
    fi
    PY="$VENV/bin/python"
fi
say "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"

# step NAME LIMIT_SECONDS COMMAND...: runs, logs, never stops the run
step() {
    local name=$1 limit=$2; shift 2
    local t0=$(date +%s)
    say "$name (limit ${limit}s)"
    timeout "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    local rc=$?
    say "$name: exit $rc in $(( $(date +%s) - t0 ))s"
    [[ $rc == 0 ]] || tail -3 "$RESULTS/$name.log"
    echo "$name $rc $(( $(date +%s) - t0 ))" >> "$RESULTS/steps.txt"
}

if [[ $DRY == 1 ]]; then
    PARITY_ENGINES="onnxruntime:fp32,tf:fp32,tensorrt:fp16,onnxruntime-cuda:fp32,tf-trt:fp16"
    PARITY_SIZE=320x240; PARITY_FRAMES=2
    SWEEP_ENGINES="onnxruntime:fp32,tensorrt:fp16"; BENCH_ENGINES="onnxruntime"
    SIZES=320x180; BATCHES=1,2; SWEEP_FRAMES=4; BENCH_FRAMES=4; BENCH_WARMUP=1
    CLIP_SIZE=640x360; CLIP_FRAMES=12; T_ENGINE=onnxruntime; T_BATCH=2
else
    PARITY_ENGINES="tensorrt:fp16,tensorrt:fp32,onnxruntime-cuda:fp32,tf:fp32"
    PARITY_SIZE=1280x720; PARITY_FRAMES=4
    SWEEP_ENGINES="tensorrt:fp16,tensorrt:fp32,onnxruntime-cuda:fp32"; BENCH_ENGINES="tensorrt,onnxruntime-cuda"
    SIZES=1280x720,1920x1080; BATCHES=1,4,8; SWEEP_FRAMES=240; BENCH_FRAMES=96; BENCH_WARMUP=8
    CLIP_SIZE=1920x1080; CLIP_FRAMES=0; T_ENGINE=tensorrt; T_BATCH=8
    nvidia-smi > "$RESULTS/nvidia-smi.txt" 2>&1 || say "nvidia-smi failed (no driver?)"
fi

step system 60 "$PY" benchmarks/gpu_check.py system --json "$RESULTS/system.json"
step parity 240 "$PY" benchmarks/gpu_check.py parity --engines "$PARITY_ENGINES" --size "$PARITY_SIZE" \
    --frames "$PARITY_FRAMES" --json "$RESULTS/parity.json"
step engine 180 "$PY" benchmarks/gpu_check.py engine --engines "$SWEEP_ENGINES" --batch "$BATCHES" --size "$SIZES" \
    --frames "$SWEEP_FRAMES" --json "$RESULTS/engine.json"
for E in ${BENCH_ENGINES//,/ }; do  # one run per engine: one engine's failure keeps the others' figures
    step "bench-$E" 90 "$PY" -m vidstyle bench --engine "$E" --batch "$BATCHES" --size "$SIZES" --temporal off \
        --frames "$BENCH_FRAMES" --warmup "$BENCH_WARMUP" --no-peak --json "$RESULTS/bench-$E.json"
done
step make-clip 90 "$PY" benchmarks/gpu_check.py make-clip --size "$CLIP_SIZE" --max-frames "$CLIP_FRAMES" \
    --out "$RESULTS/cup-$CLIP_SIZE.mp4"
step transcode 120 "$PY" benchmarks/gpu_check.py transcode --input "$RESULTS/cup-$CLIP_SIZE.mp4" \
    --output "$RESULTS/cup-$CLIP_SIZE-$T_ENGINE.mp4" --engine "$T_ENGINE" --batch "$T_BATCH" --json "$RESULTS/transcode.json"
rm -f "$RESULTS"/cup-*.mp4  # the clips are large; the figures are in the JSON

say "done in $(( $(date +%s) - START ))s; results in $RESULTS"
cat "$RESULTS/steps.txt"
