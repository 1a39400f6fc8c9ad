#!/usr/bin/env bash
# The runtime install, checked from scratch: `pip install .` (no extras) into a fresh venv,
# its size (the target is at most 600 MB), no TensorFlow or Keras in it, and a transcode
# of the sample with a built-in style and with a picture style, run from outside the
# checkout so the installed package is what runs. Needs the package index (PyPI).
#
#   bash tools/check_runtime_install.sh [VENV]     # default /tmp/vidstyle-runtime-venv (replaced)
#
# PYTHON picks the interpreter (default python3); SIZE the processing size (default 320).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-/tmp/vidstyle-runtime-venv}"
PY="${PYTHON:-python3}"
SIZE="${SIZE:-320}"

# Installed from a copy of the working tree (files git tracks or would track): a build
# inside the checkout would leave build/ there, and stale files in it reach the wheel.
SRC="$(mktemp -d)"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$SRC"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$SRC"
rm -rf "$SRC"
echo "venv size: $(du -sh "$VENV" | cut -f1) ($VENV, $("$VENV/bin/python" -V))"
echo "largest packages:"
du -sh "$VENV"/lib/python3*/site-packages/* | sort -h | tail -6 | sed 's/^/  /'

"$VENV/bin/python" - <<'EOF'
import importlib.util
import sys

present = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m)]
if present:
    sys.exit(f"the runtime install has {', '.join(present)}")
print("tensorflow: absent, keras: absent")
EOF

WORK="$(mktemp -d)"
cd "$WORK"
"$VENV/bin/vidstyle" transcode "$ROOT/samples/cup.mp4" -o builtin.mp4 --style 7 --size "$SIZE" --no-progress
"$VENV/bin/vidstyle" transcode "$ROOT/samples/cup.mp4" -o picture.mp4 --style "$ROOT/samples/starry_night.jpg" \
    --size "$SIZE" --no-progress
rm -rf "$WORK"
echo "runtime install: ok"
