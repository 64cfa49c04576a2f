# deitlab — the two commands a learner needs are `make lab` and `make test`.
# `make lab` bootstraps .venv with what learners need (torch 2.14.1, then the kit with the
# deployment stack and JupyterLab, editable); `make test` adds the test tools (pytest,
# nbval, playwright, ruff); `make check` is the short "does my install work" run.
# A second run skips what is installed.
#
# On Linux x86-64 with Python 3.11 the packages come from the hashed lock files in
# requirements/ (`make lock` rewrites them); elsewhere from pyproject.toml's ranges.
#
# TORCH=pypi (default) takes torch 2.14.1 from PyPI: on Linux x86-64 that is the CUDA
# build plus ~15 nvidia wheels (about 3 GB; it runs on the CPU when there is no GPU); on
# macOS, Windows and Linux aarch64 it is the CPU build (MPS on Apple Silicon).
# TORCH=cpu takes PyTorch's CPU-only wheels (about 200 MB) from download.pytorch.org.

# The first Python >= 3.11 on PATH (override: make lab PYTHON=/path/to/python3.12)
PYTHON    ?= $(firstword $(foreach p,python3.13 python3.12 python3.11 python3,\
             $(shell $(p) -c 'import sys; sys.version_info >= (3, 11) and print("$(p)")' 2>/dev/null)))
VENV      ?= .venv
BIN       := $(VENV)/bin
TORCH     ?= pypi
TORCH_SOURCE_pypi :=
TORCH_SOURCE_cpu  := --index-url https://download.pytorch.org/whl/cpu
TORCH_SOURCE := $(TORCH_SOURCE_$(TORCH))
# Lock files apply where they were made (Linux x86-64, Python 3.11); elsewhere the ranges do
LOCKED     = $(shell $(BIN)/python -c 'import platform, sys; print(int(platform.system() == "Linux" and platform.machine() == "x86_64" and sys.version_info[:2] == (3, 11)))' 2>/dev/null)
PORT      ?= 8888
# Jupyter refuses to run as root unless told (containers, CI machines)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
# pytest-xdist workers for the notebook run (independent notebooks in parallel)
WORKERS   ?= 2
# notebooks/QUARANTINE lists notebooks CI does not run yet (each with its reason)
QUARANTINED := $(shell sed -e 's/\#.*//' notebooks/QUARANTINE 2>/dev/null)
NOTEBOOKS := $(filter-out $(QUARANTINED),$(sort $(wildcard notebooks/[0-9]*.ipynb)))
# Notebooks whose measured speed-ups need a quiet machine: nbval runs them alone, after the rest
SERIAL    := $(filter notebooks/07_benchmarking.ipynb,$(NOTEBOOKS))
PARALLEL  := $(filter-out $(SERIAL),$(NOTEBOOKS))
SOLUTIONS := $(filter-out $(QUARANTINED),$(sort $(wildcard notebooks/solutions/*.ipynb)))
# make test runs from its own cache (cold on a fresh clone; notebooks share it within a run)
CACHE     ?= $(CURDIR)/build/cache
# nbval reads a cell's output messages only after the cell ends, and the kernel drops
# them once ~1000 are queued, so a long training cell whose tqdm bar redraws every 0.1 s
# loses its final message ("Timeout of 5 seconds exceeded waiting for output"). Under
# nbval the bars redraw every 5 s instead; in JupyterLab they keep tqdm's default.
NBVAL_ENV := DEITLAB_CACHE=$(CACHE) HF_HUB_OFFLINE=1 TQDM_MININTERVAL=5
# WORKERS notebooks at once get one thread each: oversubscribed OpenMP threads spin, and
# training epochs measured up to 10× slower with two 2-thread kernels on two cores.
ONE_THREAD := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
NBVAL     := --nbval-lax --nbval-current-env --nbval-cell-timeout=3600 --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: translations setup dev lab test check minimums unit nbval rerun e2e run bench strip lint lock wheel-check refresh cpp-demo clean

setup: $(VENV)/.deitlab-installed
dev: $(VENV)/.dev-installed

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: deitlab needs Python >= 3.11, and none of python3.13, python3.12, python3.11, python3 on PATH is one (install one, or: make lab PYTHON=/path/to/python3.x)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.torch-installed: | $(BIN)/python
	@case "$(TORCH)" in pypi|cpu) ;; *) echo "make: TORCH=$(TORCH): use TORCH=pypi (default) or TORCH=cpu" >&2; exit 2;; esac
	$(BIN)/pip install $(TORCH_SOURCE) torch==2.14.1 torchvision==0.29.1
	touch $@

# $(1): the extra; $(2): its lock file
define install_kit
	$(if $(filter 1,$(LOCKED)),$(BIN)/pip install --require-hashes --no-deps -r $(2) && $(BIN)/pip install --no-deps -e .,$(BIN)/pip install -e ".[$(1)]")
	$(BIN)/pip check
endef

# What learners need: the kit, the deployment stack, JupyterLab
$(VENV)/.deitlab-installed: $(VENV)/.torch-installed pyproject.toml requirements/learner.txt
	$(call install_kit,learner,requirements/learner.txt)
	touch $@

# ... and the test tools
$(VENV)/.dev-installed: $(VENV)/.deitlab-installed requirements/dev.txt
	$(call install_kit,all,requirements/dev.txt)
	touch $@

# Prove the lower bounds of pyproject.toml: the unit tests on torch 2.11 / torchvision 0.26 /
# torchao 0.17 / ExecuTorch 1.2 (requirements/minimums.txt), in build/minimums (PyPI; ~3 GB on Linux x86-64).
minimums:
	$(PYTHON) -m venv build/minimums
	build/minimums/bin/pip install -r requirements/minimums.txt -e ".[deploy,lab,dev]"
	HF_HUB_OFFLINE=1 build/minimums/bin/python -m pytest -q -n $(WORKERS) tests

# Rewrite the lock files from pyproject.toml (on Linux x86-64 with Python 3.11)
lock: $(VENV)/.torch-installed
	$(BIN)/python requirements/lock.py learner requirements/learner.txt
	$(BIN)/python requirements/lock.py all requirements/dev.txt

# LAB_LANG=ja|zh|vi opens that edition (notebooks/ja, zh, vi) with JupyterLab's UI in that language
# (not LANG: the shell's locale variable). Its settings live in build/lab-settings/<lang>.
LAB_LANG  ?= en
lab: setup
	@$(BIN)/python -m deitlab.i18n lab $(LAB_LANG) build/lab-settings/$(LAB_LANG) >/dev/null
	@echo "JupyterLab → http://127.0.0.1:$(PORT)/lab (the full URL with its token follows)"
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) $(ALLOW_ROOT) \
		--ServerApp.root_dir=notebooks/$$($(BIN)/python -m deitlab.i18n lab $(LAB_LANG) build/lab-settings/$(LAB_LANG)) \
		--LabApp.user_settings_dir=build/lab-settings/$(LAB_LANG)

# Unit tests, every notebook and every solution notebook under nbval, then the browser pass.
# Per-test times (every notebook cell) land in build/reports/*.xml. Chromium and the CJK fonts come
# first: the unit tests draw Japanese and Chinese plot titles too.
test: dev
	sh tests/e2e/install_browser.sh
	$(NBVAL_ENV) $(ONE_THREAD) $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile $(NBVAL) --junitxml=build/reports/parallel.xml tests $(PARALLEL) $(SOLUTIONS)
	$(if $(SERIAL),$(NBVAL_ENV) $(BIN)/python -m pytest $(NBVAL) --junitxml=build/reports/serial.xml $(SERIAL))
	$(MAKE) rerun
	$(MAKE) book slides
	$(MAKE) e2e

unit: dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n $(WORKERS) tests

nbval: dev
	$(NBVAL_ENV) $(ONE_THREAD) $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile $(NBVAL) $(PARALLEL) $(SOLUTIONS)
	$(if $(SERIAL),$(NBVAL_ENV) $(BIN)/python -m pytest $(NBVAL) $(SERIAL))

# Every notebook's code cells twice in one kernel, as an instructor re-runs them live
# (02, 04 and 07 with a busy loop on one core the second time). Uses the warm cache.
rerun: dev
	$(NBVAL_ENV) $(ONE_THREAD) $(BIN)/python -m pytest -n $(WORKERS) -m rerun --junitxml=build/reports/rerun.xml tests/rerun

# Does my install work? The unit tests and notebook 00 (a few minutes on a laptop).
check: dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n $(WORKERS) tests
	$(NBVAL_ENV) $(BIN)/python -m pytest -q $(NBVAL) notebooks/00_setup.ipynb

# JupyterLab in Debian's headless Chromium: 00_setup and every notebook with a widget explorer.
e2e: dev
	sh tests/e2e/install_browser.sh
	DEITLAB_CACHE=$(CACHE) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m e2e -rP $(E2E_ARGS) tests/e2e

# Execute every notebook headless into build/ (executed .ipynb + HTML), with wall times.
run: setup
	@mkdir -p build
	@for nb in $(NOTEBOOKS) $(SOLUTIONS); do \
		start=$$(date +%s); \
		$(BIN)/jupyter nbconvert --to notebook --execute --output-dir build/$$(dirname $$nb) "$$nb" --log-level WARN || exit 1; \
		$(BIN)/jupyter nbconvert --to html build/$$nb --log-level WARN || exit 1; \
		echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done

bench: setup
	$(BIN)/deitlab bench --model deit_base_patch16_224 --quick --out build/bench

# Strip outputs (cells tagged keep_output keep theirs) and re-sync the Colab links.
strip: dev
	$(BIN)/nbstripout --keep-id $(NOTEBOOKS) $(SOLUTIONS)
	$(BIN)/python -m deitlab.nbtools sync $(NOTEBOOKS) $(SOLUTIONS)
	$(BIN)/python -m deitlab.slides apply $(NOTEBOOKS) $(SOLUTIONS)

lint: dev
	$(BIN)/ruff check deitlab tests notebooks
	$(BIN)/ruff format --check deitlab tests notebooks

# Build a wheel, install it (not editable) into a scratch venv, import it from elsewhere.
wheel-check: dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests/test_packaging.py

# Optional (notebook 06, going further): compile a tiny C++ program against the wheel's
# libtorch, run the exported model and compare its top-1 with Python.
cpp-demo: setup
	$(BIN)/python -m deitlab.cpp_demo

clean:
	rm -rf build .pytest_cache

# Re-execute notebooks in place (offline, as CI does), strip, then stamp each kept output
# with its cell's source fingerprint (a test fails when a cell changes after that).
# NB=notebooks/03_*.ipynb limits it to some notebooks.
NB ?= $(NOTEBOOKS) $(SOLUTIONS)
refresh: dev
	HF_HUB_OFFLINE=1 $(BIN)/jupyter nbconvert --to notebook --execute --inplace $(NB) --log-level WARN
	$(MAKE) strip
	$(BIN)/python -m deitlab.nbtools stamp $(NB)

# ---------------------------------------------------------------- teaching delivery (issue 19)
# Web assets the slides and the book load (reveal.js, MathJax 2, require.js, jQuery), from the
# npm registry into build/ once, so that nothing is fetched from a CDN at view time.
VENDOR_NPM := build/vendor/npm
VENDOR_WEB := build/vendor/web
.PHONY: vendor slides slide-metadata book cell-times instructors classroom
vendor: $(VENDOR_WEB)/.copied
$(VENDOR_WEB)/.copied:
	npm install --no-audit --no-fund --loglevel=error --prefix $(VENDOR_NPM) reveal.js@5 jquery@3 requirejs@2 mathjax@2
	$(BIN)/python -m deitlab.slides vendor $(VENDOR_NPM)/node_modules $(VENDOR_WEB)
	touch $@

# Re-derive every cell's slide type from the notebook structure (rules: deitlab/slides.py).
slide-metadata: setup
	$(BIN)/python -m deitlab.slides apply $(NOTEBOOKS) $(SOLUTIONS)

# One reveal.js deck per notebook with its kept outputs (nothing runs): build/slides/*.slides.html.
slides: setup vendor
	@rm -rf build/slides && mkdir -p build/slides && cp -r $(VENDOR_WEB) build/slides/vendor
	$(BIN)/python -m deitlab.slides export build/slides $(NOTEBOOKS) $(SOLUTIONS)
	@echo "open build/slides/<notebook>.slides.html (arrows: → next slide, ↓ details, s: speaker notes)"

# The rendered book (Sphinx + myst-nb; config in notebooks/_book/): every notebook with its kept
# outputs, nothing executed, offline. Open build/book/index.html.
book: setup vendor
	$(BIN)/python -m sphinx -q -b html -c notebooks/_book notebooks build/book
	@echo "book: open build/book/index.html"

# Per-cell times: every notebook under nbval on an empty cache (cold), then again (warm), one
# notebook at a time with the machine's threads; nbval's JUnit XML → notebooks/cell_times.csv
# (machine, date, load), the session plans, then the check that no warm cell outside a timing
# cell takes over 5 s (rules: deitlab/celltimes.py).
CELL_TIMES_CACHE ?= $(CURDIR)/build/cell-times-cache
CELL_TIMES_NB    ?= $(NOTEBOOKS)
cell-times: setup
	rm -rf $(CELL_TIMES_CACHE) && mkdir -p build/reports
	$(NBVAL_ENV) DEITLAB_CACHE=$(CELL_TIMES_CACHE) $(BIN)/python -m pytest -p no:cacheprovider $(NBVAL) --junitxml=build/reports/cells-cold.xml $(CELL_TIMES_NB)
	$(NBVAL_ENV) DEITLAB_CACHE=$(CELL_TIMES_CACHE) $(BIN)/python -m pytest -p no:cacheprovider $(NBVAL) --junitxml=build/reports/cells-warm.xml $(CELL_TIMES_NB)
	$(BIN)/python -m deitlab.celltimes report --cold build/reports/cells-cold.xml --warm build/reports/cells-warm.xml \
		--out notebooks/cell_times.csv --date "$$(date -u '+%Y-%m-%d %H:%M UTC')" \
		--note "load average $$(cut -d' ' -f1-3 /proc/loadavg)" $(CELL_TIMES_NB)
	$(MAKE) instructors
	$(BIN)/python -m deitlab.celltimes check notebooks/cell_times.csv

# notebooks/INSTRUCTORS.md from the notebooks and notebooks/cell_times.csv (rules: deitlab/instructors.py).
instructors: setup
	$(BIN)/python -m deitlab.instructors notebooks/cell_times.csv notebooks/INSTRUCTORS.md $(NOTEBOOKS)

# Before a session, on the instructor's machine (online): `deitlab fetch --warm` puts the notebooks'
# pretrained weights into WEIGHTS, runs every notebook once with them so that the cache the learners'
# `make lab` uses (DEITLAB_CACHE, default ~/.cache/deitlab) holds every trained model, export and
# probe, verifies it (`deitlab cache verify`) and prints what to copy to the learners' machines.
WEIGHTS ?= build/weights
classroom: setup
	$(BIN)/deitlab fetch --to $(WEIGHTS) --warm --notebooks $(NOTEBOOKS)

# ---------------------------------------------------------------- translations (issue 20)
# Markdown of every notebook → notebooks/locales/<stem>.pot → <locale>/<stem>.po (changed English
# becomes fuzzy and the edition shows the English until re-translated), the kit's messages →
# deitlab/locales/, then the editions notebooks/ja, zh, vi (code cells copied unchanged) and the
# completeness report. Rules: deitlab/i18n/; tests/test_i18n.py fails when this was not run.
translations: dev
	$(BIN)/python -m deitlab.i18n extract
	$(BIN)/python -m deitlab.i18n merge
	$(BIN)/python -m deitlab.i18n build
	$(BIN)/python -m deitlab.i18n status
