# Everything a new machine needs, from python3 and make alone.
PYTHON ?= python3
VENV := .venv
# uv from PATH, else a private copy installed by pip into .uv/ (no root, no global changes)
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.uv/bin/uv)
BIN := $(VENV)/bin
OUT ?= demo-output

.PHONY: install demo test lint bench clean

$(CURDIR)/.uv/bin/uv:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.uv uv

$(BIN)/screening-audit: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

install: $(BIN)/screening-audit

demo: install
	$(BIN)/screening-audit demo --out $(OUT)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
