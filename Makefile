# FlowEHR Pipelines: two commands set up a fresh machine.
#   make run   - create the virtualenv, install, generate demo data if missing,
#                materialise the whole asset graph in one process, print a summary
#   make test  - install and run the tests
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLOWEHR_DATA_DIR ?= $(CURDIR)/data
export FLOWEHR_DATA_DIR
export DAGSTER_HOME ?= $(FLOWEHR_DATA_DIR)/dagster_home
export PYSPARK_PYTHON := $(abspath $(BIN))/python
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: install run dev test test-all test-topology test-cluster test-long lint format bench clean-data sbom

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv resolves and installs from the lock in seconds; pyspark builds once, then is cached.
# Bytecode is compiled once at install: where PYTHONDONTWRITEBYTECODE is set, every
# process would otherwise compile dagster, pandas and great_expectations afresh (~6 s).
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	touch $@

# delta-spark and hadoop-aws for local Spark (deploy/spark-jars/pom.xml): copied into
# $(SPARK_JARS), where resources/spark.py finds them. Maven's cache is in the venv, so
# once it is filled a reinstall runs offline (-o); a missing artifact falls back to
# Maven Central.
MVN ?= mvn
SPARK_JARS := $(VENV)/spark-jars
$(SPARK_JARS)/.installed: $(BIN)/python deploy/spark-jars/pom.xml
	rm -rf $(SPARK_JARS)
	@command -v $(MVN) > /dev/null || { echo "make install needs Maven (mvn) for the Spark jars" >&2; exit 1; }
	$(MVN) -o -q -B -f deploy/spark-jars/pom.xml -Dmaven.repo.local=$(abspath $(VENV))/maven \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(abspath $(SPARK_JARS)) \
		2> /dev/null > /dev/null \
	|| $(MVN) -q -B -f deploy/spark-jars/pom.xml -Dmaven.repo.local=$(abspath $(VENV))/maven \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(abspath $(SPARK_JARS))
	touch $@

install: $(VENV)/.installed $(SPARK_JARS)/.installed

run: install
	$(BIN)/flowehr demo-data --if-missing
	$(BIN)/flowehr run

dev: install
	$(BIN)/flowehr demo-data --if-missing
	mkdir -p "$(DAGSTER_HOME)"
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

test: install
	$(BIN)/pytest

# The production topology (code server, webserver, daemon, PostgreSQL): minutes, so apart.
test-topology: install
	$(BIN)/pytest -m topology

# Spark scale-out targets started from the installed pyspark (Spark Connect, a standalone
# cluster, the machine's Connect service) on 127.0.0.1, the reporting SQL on Spark against
# DuckDB, and delta-spark/delta-rs interop.
test-cluster: install
	$(BIN)/pytest -m cluster

# The long reliability runs (~10 minutes): 20 seeded SIGKILLs of whole runs, each healed by
# a rerun, whole runs on a PostgreSQL instance, an S3 lake and a PostgreSQL source, and the
# skip-unchanged reruns (no new Delta version, no JVM), the idempotency runs and the privacy
# scan at every scale.
test-long: install
	$(BIN)/pytest -m long

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	@# Findings go to stdout and fail the target; bandit's chatter about the reasons in
	@# "# nosec BXXX: reason" comments goes to stderr and is dropped.
	$(BIN)/bandit -q -c pyproject.toml -r flowehr_pipelines assets resources transforms \
		2> >(grep -v -e "WARNING" >&2)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Supply chain: a CycloneDX SBOM of the installed (locked) environment and a licence
# report, for a vulnerability scanner and a licence review elsewhere (docs/DEPLOYMENT.md).
SUPPLY_CHAIN_DIR ?= build/supply-chain
sbom: install
	mkdir -p $(SUPPLY_CHAIN_DIR)
	$(BIN)/cyclonedx-py environment --pyproject pyproject.toml --of JSON --output-reproducible \
		--validate -o $(SUPPLY_CHAIN_DIR)/sbom.cdx.json $(BIN)/python
	$(BIN)/pip-licenses --python $(BIN)/python --format=csv --with-urls \
		--output-file $(SUPPLY_CHAIN_DIR)/licences.csv
	$(BIN)/pip-licenses --python $(BIN)/python --summary \
		--output-file $(SUPPLY_CHAIN_DIR)/licences-summary.txt

# Benchmarks are measurements, not tests: results go to docs/bench/ and docs/BENCHMARKS.md.
# M takes tens of minutes and ~8 GB of disk; L does not fit (see docs/BENCHMARKS.md).
BENCH_SCALES ?= S M
BENCH_REPEAT ?= 3
bench: install
	for scale in $(BENCH_SCALES); do $(BIN)/python -m bench.run --scale $$scale --repeat $(BENCH_REPEAT) || exit 1; done
	$(BIN)/python -m bench.run --windows --repeat $(BENCH_REPEAT)
	$(BIN)/python -m bench.report

clean-data:
	rm -rf "$(FLOWEHR_DATA_DIR)"
