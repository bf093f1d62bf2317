# Everything a new machine needs, from python3 and make alone.
PYTHON ?= python3
VENV := .venv
# uv from PATH, else a private copy installed by pip into .uv/ (no root, no global changes)
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.uv/bin/uv)
BIN := $(VENV)/bin
OUT ?= demo-output

.PHONY: install browser demo test chaos lint bench clean

$(CURDIR)/.uv/bin/uv:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.uv uv

# --compile-bytecode: every cold `screening-audit run` imports Prefect, polars and Great Expectations;
# without .pyc files (PYTHONDONTWRITEBYTECODE, read-only site-packages) each process compiles them
# again: 7.5 s instead of 3 s for Great Expectations alone (docs/benchmarks.md).
$(BIN)/screening-audit: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --extra demo
	@touch $@

install: $(BIN)/screening-audit

demo: install
	$(BIN)/screening-audit demo --out $(OUT)

# The report is checked in a real headless Chromium (Debian's package); installed when we can.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package) for the report's browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found and cannot install it here: the browser test will be skipped"; fi; }

# Three workers on two CPUs: much of the suite waits on subprocesses (CLI runs, Prefect's temporary server, moto,
# Dask workers). On this project's 2-CPU machine the whole suite took 965 and 1015 s with 3 workers and 1043 s with 2
# (2026-12-07, fresh clones, nothing else running): a few percent, and CI must stay under 20 minutes.
test: install browser
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

# The chaos test with every kill point (make test runs a subset: tests/chaos_cases.py), about twice its time.
chaos: install
	SCREENING_AUDIT_CHAOS_POINTS=all $(BIN)/python -m pytest -q -n 2 --dist loadfile tests/test_chaos_local.py \
	  tests/test_chaos_s3.py

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.bench_cluster

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
