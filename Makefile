# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/kermany_pneumonia
DEMO_OUT ?= runs/demo
DEMO_CONFIG ?= configs/demo.yaml
# The demo model is also scored on films of another site (never trained on), when there.
ifeq ($(DATA),../shared/data/kermany_pneumonia)
EXTERNAL ?= $(wildcard ../shared/data/kermany_site)
# configs/demo.yaml's recipe, head and threshold method were chosen on kermany_site: its card
# says so, and `cxr evaluate` marks that set's figures "used for selection: optimistic".
SELECTED_ON ?= $(EXTERNAL)
endif

.PHONY: demo test lint docs clean chromium pacs-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	touch $@

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -c constraints.txt -e .
	touch $@

demo: $(VENV)/.installed
	$(BIN)/cxr data summary $(DATA)
	$(BIN)/cxr train --data $(DATA) --out $(DEMO_OUT) --config $(DEMO_CONFIG) \
		$(foreach set,$(EXTERNAL),--external $(set)) $(if $(RESUME),--resume) \
		$(foreach set,$(SELECTED_ON),--set 'selection_sets={$(set): [recipe, head, threshold method]}')

# The web-page test drives Debian's Chromium: installed here when missing and root (CI);
# elsewhere that test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null \
	|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends chromium >/dev/null; } || echo "warning: chromium not installed"

# The PACS round-trip test drives Debian's Orthanc with its DICOMweb plugin and the DICOM
# output test checks files with dciodvfy (dicom3tools): installed here when missing and root
# (CI); elsewhere those tests skip and say why.
pacs-tools:
	@{ command -v Orthanc >/dev/null 2>&1 && command -v dciodvfy >/dev/null 2>&1 \
	&& [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; } \
	|| [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null \
	|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends orthanc orthanc-dicomweb dicom3tools >/dev/null; } \
	|| echo "warning: orthanc, orthanc-dicomweb or dicom3tools not installed"

# -ra: every skip is listed with its reason at the end of the run.
test: $(VENV)/.installed-dev chromium pacs-tools docs
	$(BIN)/python -m pytest -q -ra

# The API reference (mkdocs + mkdocstrings, read from the docstrings without importing
# torch) and the guides in docs/; --strict: any warning fails the build, and `make test`.
docs: $(VENV)/.installed-dev
	$(BIN)/mkdocs build --strict --quiet

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
