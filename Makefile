# The analytical CRM. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo retailer: size, seed and cutoff date of `make run`.
DEMO_CUSTOMERS ?= 20000
DEMO_SEED ?= 42
DEMO_AS_OF ?= 2026-06-30
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k rfm"`.
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test test-all ui dashboard bench lint format clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/crm: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(BIN)/crm ## Create .venv and install the project with its dev tools

run: install ## Make the demo data, run the whole nightly job, say where the results are
	$(BIN)/crm demo-data --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --as-of $(DEMO_AS_OF)
	$(BIN)/crm run --as-of $(DEMO_AS_OF)
	@echo
	@echo "Open the dashboards:      make dashboard   (then http://localhost:8501; to sign people in: crm users add NAME --role ROLE)"
	@echo "Open Dagster (schedules): make ui          (then http://localhost:3000)"

test: install ## Run the default test suite (unit, integration, browser; not the slow ones)
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-all: install ## Run every test, the slow ones too
	$(BIN)/pytest $(PYTEST_ARGS)

ui: install ## Start the Dagster webserver and daemon (schedules and sensors run while it is up)
	$(BIN)/crm ui

dashboard: install ## Start the Streamlit dashboards on the last published snapshot
	$(BIN)/crm dashboard

bench: install ## Time, CPU and memory of the night stage by stage at each size, dbt models alone, CLV routes, incremental night, pages: docs/benchmarks.md (BENCH_CUSTOMERS="100000 1000000", BENCH_SALES_SHAPE=tables|invoice-lines, BENCH_REFIT_DAYS=1)
	$(BIN)/crm bench --customers "$${BENCH_CUSTOMERS:-100000 1000000}" --sales-shape $${BENCH_SALES_SHAPE:-tables} \
		--refit-days $${BENCH_REFIT_DAYS:-1}

lint: install ## ruff (Python) and sqlfluff (dbt SQL)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd dbt_project && CRM_WAREHOUSE_PATH=:memory: CRM_MARTS_PATH=:memory: ../$(BIN)/sqlfluff lint models

format: install ## Fix what ruff and sqlfluff can fix
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	cd dbt_project && CRM_WAREHOUSE_PATH=:memory: CRM_MARTS_PATH=:memory: ../$(BIN)/sqlfluff fix models

clean: ## Remove generated data and the virtual environment
	rm -rf data/landing data/truth data/warehouse data/published data/dagster $(VENV) dbt_project/target
