# `make demo` and `make test` work on a fresh Debian/Ubuntu machine with Python 3.11:
# they install what is missing (system packages, .venv, the package in editable mode) first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tfcomp-installed
OPS     := tfcomp/_bpg_ops.so
OPS_SRC := $(wildcard tfcomp/csrc/bpg/*.c tfcomp/csrc/bpg/*.h) tfcomp/csrc/bpg_ops.cc tfcomp/csrc/build.py
FUZZ_SECONDS ?= 60
WEB_DEPS := serving/web/node_modules/@tensorflow/tfjs-tflite
# `make setup GPU=1` also installs TensorFlow's CUDA wheels (tensorflow[and-cuda], setup.py's
# "gpu" extra) for training on NVIDIA GPUs.
GPU    ?=
GPU_PKG := tensorflow[and-cuda]==2.14.1
GPU_STAMP := $(VENV)/.tfcomp-gpu-installed

.PHONY: all setup system-deps ops fuzz fuzz-c fuzz-py demo test bench bench-pipeline bench-train eval-restorers clean

all: test

setup: $(STAMP) $(OPS) $(WEB_DEPS) $(if $(GPU),$(GPU_STAMP))

system-deps:
	@bash .ci/system-deps.sh

# The BPG codec's TensorFlow op (C on libx265/libde265), rebuilt when its sources change.
ops: $(OPS)
$(OPS): $(OPS_SRC) | $(STAMP)
	@bash .ci/system-deps.sh
	$(BIN)/python tfcomp/csrc/build.py

# The browser demo's npm packages (tfjs-tflite), exactly as locked.
$(WEB_DEPS): serving/web/package-lock.json
	@bash .ci/system-deps.sh
	cd serving/web && npm ci --no-audit --no-fund --loglevel=error
	@touch $(WEB_DEPS)

# Bounded fuzzing: libFuzzer+ASan on the BPG decoder (installs clang when missing), then the
# seeded mutation fuzzer on the Python-side parsers (.cwic, .jpdse, hiding-jpeg, JPEG, BPG, the
# image reader) for FUZZ_SECONDS per target; findings go to build/py_fuzz/.
fuzz: fuzz-c fuzz-py

fuzz-c: $(OPS)
	bash tfcomp/csrc/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

fuzz-py: setup
	$(BIN)/python -m tfcomp.fuzz --seconds $(FUZZ_SECONDS) --out build/py_fuzz

# Re-run the install whenever the dependency pins or setup.py change.
$(STAMP): requirements.txt setup.py
	@bash .ci/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# GPU=1: TensorFlow's CUDA wheels on top of the pinned install (once; its own stamp).
$(GPU_STAMP): $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -q "$(GPU_PKG)"
	@touch $(GPU_STAMP)

demo: setup
	$(BIN)/tfcomp demo --out demo_out

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python benchmarks/bench.py

# Training data pipeline, old (all decoded in memory) vs streaming: patches/s, CPU and peak RSS
# on the 149 training images (../shared/data) and 20,000 generated JPEGs (in /tmp; ~10 min).
bench-pipeline: setup
	$(BIN)/python benchmarks/bench_pipeline.py

# Seconds per training step of every model (narrow and paper configs) per precision, one run.
bench-train: setup
	$(BIN)/python benchmarks/bench_train_step.py

# Reproduce the README's restorer tables (needs ../shared/data).
eval-restorers: setup
	bash training/eval_restorers.sh

clean:
	rm -rf demo_out build *.egg-info .pytest_cache $(OPS)
