# idrflow: two commands. `make run` starts the whole stack; `make test` runs every test tier.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install run test test-unit bench bench-wave lint fmt clean fuzz chaos

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

run: install
	$(BIN)/idrflow dev

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-unit: install
	$(BIN)/python -m pytest -q -m "unit or workflow"

bench: install
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m bench.rules_bench
	$(BIN)/python -m bench.worklist_bench
	$(BIN)/python -m bench.parse_bench
	$(BIN)/python -m bench.intake_bench
	$(BIN)/python -m bench.workflow_bench --reps 5 --plan-claims 10000
	$(BIN)/python -m bench.alert_bench --claims 300 --spread-minutes 0
	$(BIN)/python -m bench.alert_bench --claims 300 --spread-minutes 3

# the 09:00 wave: 10,000 claims whose first reminder is due today, spread over the default 30 minutes,
# through the whole stack (about an hour: posting and planning, then the wave)
bench-wave: install
	$(BIN)/python -m bench.alert_bench --claims 10000 --spread-minutes 30 --lead 1400

# kill -9 each part of the stack with 1,000 claims in flight (make test runs it with 200)
chaos: install
	IDRFLOW_CHAOS_CLAIMS=1000 $(BIN)/python -m pytest -q -s -p no:cacheprovider -m chaos tests/chaos

# schemathesis with every check against the four services on a stack of its own (tests/fuzz/run.py);
# bigger runs: FUZZ_ARGS="--max-examples 1000" make fuzz
fuzz: install
	$(BIN)/python -m tests.fuzz.run $(FUZZ_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .devstack .pytest_cache .mypy_cache .ruff_cache
