# make quickstart: venv + install + build the tiny model + pre-train + SFT + before/after table
# make quickstart-rl: the same, then GRPO with the answer verifier (~12 min in all)
# make test:       venv + install + the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on the dev and CI machines; on a GPU machine use e.g. `make TORCH_SPEC=torch test`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test quickstart quickstart-rl clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

quickstart: install
	rm -rf runs/quickstart
	HF_HUB_OFFLINE=1 $(BIN)/posttrain quickstart --output-dir runs/quickstart

quickstart-rl: install
	rm -rf runs/quickstart
	HF_HUB_OFFLINE=1 $(BIN)/posttrain quickstart --rl --output-dir runs/quickstart

clean:
	rm -rf $(VENV) runs
