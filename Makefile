# The kit's commands. `make test` and `make demo` work on a fresh machine (they create .venv).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-packages test demo release figures fetch standin clean

install: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@$(MAKE) --no-print-directory system-packages
	$(PYTHON) -m venv $(VENV)
	@# uv (from PyPI) installs the same pinned set as pip in about half the time: parallel downloads
	@# and unpacking, bytecode compiled on every core. Where uv cannot be had, pip does it.
	if $(PY) -m pip install --quiet uv \
	  && $(UV) pip install --quiet --python $(PY) --compile-bytecode -r requirements.txt -c constraints.txt; \
	then $(UV) pip install --quiet --python $(PY) --no-deps -e . ; \
	else $(PY) -m pip install --quiet -r requirements.txt -c constraints.txt \
	  && $(PY) -m pip install --quiet --no-deps -e . ; fi
	touch $(STAMP)

## System packages (Debian/Ubuntu), installed with apt when their command is missing:
## grading runs every notebook in a bubblewrap sandbox (bwrap); the tests open the feedback pages
## in headless Chromium (chromium), grade shards into a PostgreSQL server of their own (postgresql;
## pg_ctlcluster comes with the server, not with the client) and run them as a SLURM job array on
## a one-node cluster of their own (slurm-wlm, munge).
SYSTEM_PACKAGES := bwrap:bubblewrap chromium:chromium pg_ctlcluster:postgresql slurmctld:slurm-wlm munged:munge
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" -eq 0 ]; then as_root=""; else as_root="sudo"; fi; \
	DEBIAN_FRONTEND=noninteractive $$as_root apt-get install -y -qq $$missing >/dev/null \
	  || { $$as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$as_root apt-get install -y -qq $$missing >/dev/null; } \
	  || { echo "install$$missing (Debian/Ubuntu: apt install$$missing), then run make again" >&2; exit 1; }

## Tests of the kit, offline: release up to date, then pytest.
test: install
	$(PY) -m autograder release --check
	$(PY) -m pytest -q -n 2 --dist loadgroup --durations=30

## Build the release and grade two demo students (reference, blank); stand-in when offline.
demo: install
	$(PY) -m autograder demo

## Every solution figure as PNG (+ executed HTML) under solutions/figures/; needs `make fetch`.
figures: install
	$(PY) -m autograder figures

## Rebuild notebooks/ and solutions/notebooks/ from autograder/authoring/assignments/.
release: install
	$(PY) -m autograder release

## Download the hub model and CIFAR-10 into data/ (needs network).
fetch: install
	$(PY) -m student_src.fetch

## Untrained stand-ins for offline use (clearly marked in every figure).
standin: install
	$(PY) -m student_src.fetch --standin

clean:
	rm -rf graded .pytest_cache
