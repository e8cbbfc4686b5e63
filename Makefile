# Every target creates .venv on first use and installs the core and every plugin (editable).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)
DATA   ?= ../shared/data/cifar10-jpeg.tar.gz

.PHONY: install test demo bench chromium clean

install: $(STAMP)

$(STAMP): pyproject.toml $(PLUGINS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,serve]' $(foreach p,$(PLUGINS),-e ./$(dir $(p)))
	touch $(STAMP)

# The report's browser test needs Chromium. CI (CI=true) installs it and the test is required
# there; on a developer's machine without it (and without root) the test is skipped with the
# reason, and `make chromium` installs it.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: $(STAMP)
	@if [ -n "$$CI" ]; then $(MAKE) --no-print-directory chromium; fi
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/xaikit plugins list
	$(VENV)/bin/xaikit train ultimus --data $(DATA) --subset 5000 --epochs 3 --out runs/demo --overwrite
	$(VENV)/bin/xaikit evaluate runs/demo --data $(DATA)
	$(VENV)/bin/xaikit explain runs/demo --data $(DATA) --images 8
	$(VENV)/bin/xaikit report runs/demo --data $(DATA) --images 8

# bench_*.py files are collected only here (pyproject's testpaths keep them out of `make test`).
bench: $(STAMP)
	$(PY) -m pytest benchmarks -q -p no:randomly -o python_files='bench_*.py' \
		--benchmark-group-by=func --benchmark-columns=mean,stddev,rounds \
		--benchmark-json=benchmarks/results.json
	$(PY) benchmarks/table.py benchmarks/results.json

clean:
	rm -rf $(VENV) runs .benchmarks
