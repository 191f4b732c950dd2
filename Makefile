# Two entry points for a new user: `make demo` (the demo study) and `make test` (the test suite).
# Both create .venv if needed and install the pinned environment (requirements.lock) first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mcrad-installed
CORES ?= all
# test workers: each runs its share of test modules (tests/conftest.py keeps a session study's users together)
TEST_WORKERS ?= 2

.PHONY: demo test lint clean system-deps

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	@echo "Report: $(CURDIR)/results/demo/report/index.html"

# What the tests need from Debian: trusted R references (pROC, sva, survival), Chromium for the report test,
# SLURM and munge for the one-node cluster test, Orthanc with its DICOMweb plugin for the PACS tests.
# Installed when running as root (as CI does); otherwise those tests say what is missing and skip.
SYSTEM_PACKAGES := r-base-core r-cran-proc r-bioc-sva r-cran-survival chromium slurm-wlm munge orthanc orthanc-dicomweb
system-deps:
	@if ! { Rscript -e 'library(pROC); library(sva); library(survival)' && command -v chromium \
	        && command -v slurmctld && command -v munged \
	        && test -x /usr/sbin/Orthanc && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so; } >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); \
	  else echo "note: missing system packages (apt-get install $(SYSTEM_PACKAGES)); those tests will skip"; fi; \
	fi

test: $(STAMP) system-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check workflow tests benchmarks
	$(BIN)/snakemake --lint --cores 1

clean:
	rm -rf results .snakemake
