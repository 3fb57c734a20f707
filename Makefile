# Two commands do all the set-up: `make demo` and `make test` (each creates .venv on first use).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; on a CUDA workstation use e.g. `make TORCH=torch test` (or preinstall your own).
TORCH ?= torch==2.13.0
# GUI runs need a display: use xvfb-run when there is none and it is installed.
XVFB_RUN := $(shell command -v xvfb-run 2>/dev/null)
XRUN := $(if $(DISPLAY),,$(if $(XVFB_RUN),xvfb-run -a -s "-screen 0 1600x1000x24",))

.PHONY: install test demo lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[all,test]"
	touch $@

install: $(BIN)/.installed

test: install
	$(XRUN) $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check napari_unet tests benchmarks sample_data scripts
	$(BIN)/ruff format --check napari_unet tests benchmarks sample_data scripts

# With a display: napari with the trainer dock, training live on the sample; without one: the same
# pipeline headless (train 30 s, predict, write masks, print metrics).
demo: install
	$(BIN)/napari-unet demo $(if $(DISPLAY),--gui,)

# Benchmarks print JSON; record results in docs/benchmarks.md with device, date and command.
bench: install
	$(BIN)/python benchmarks/quality.py
	$(XRUN) $(BIN)/python benchmarks/gui_responsiveness.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
