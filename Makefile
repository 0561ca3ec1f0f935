# MTLRadiomics: two commands on a fresh machine.
#   make demo   set up .venv and run the main job on the bundled synthetic sample
#   make test   set up .venv and run the test suites
#   make mutants  mutation testing of the core (slow, not in CI; results in benchmarks/RESULTS.md)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test setup clean mutants

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mtl-radiomics demo --out demo_output

test: $(STAMP)
	$(PY) -m pytest -q Testing

mutants: $(STAMP)
	$(PY) -m pip install "mutmut>=3.8"
	$(PY) -m benchmarks.mutants

clean:
	rm -rf $(VENV) demo_output .pytest_cache
