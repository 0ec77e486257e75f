# The book in two commands (see README.md):
#   make book   create .venv, fetch and verify the data, execute every chapter, render HTML
#   make test   the same set-up, then unit tests + nbval over the executed notebooks + HTML checks
# Options: PROFILE=ci|full (default ci), DEVICE=auto|cpu|cuda|cuda:N|mps, PYTHON=python3.11.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
PROFILE ?= ci
DEVICE ?= auto
VENV := .venv
PY := $(VENV)/bin/python
SITE := _build/$(PROFILE)/site
HTML := $(SITE)/_build/html/index.html
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
MATHJAX := .cache/mathjax/es5/tex-chtml.js
SOURCES := $(wildcard book/*.md) $(shell find lib -name '*.py') _toc.yml _config.yml references.bib $(wildcard _static/*)
PIP := $(PY) -m pip --disable-pip-version-check --quiet

# Refuse a bad PROFILE or DEVICE at once, before anything is installed or computed.
# (The names must match lib/profiles.py; tests/test_run.py checks that they do.)
PROFILES := ci full
ifeq ($(filter $(PROFILE),$(PROFILES)),)
$(error unknown PROFILE '$(PROFILE)'; valid profiles: $(PROFILES))
endif
ifeq ($(shell echo '$(DEVICE)' | grep -Ex 'auto|cpu|cuda|cuda:[0-9]+|mps'),)
$(error unknown DEVICE '$(DEVICE)'; valid devices: auto, cpu, cuda, cuda:N, mps)
endif

.PHONY: book test env data execute html clean
.DEFAULT_GOAL := book

book: $(HTML)
	@echo "The book is at $(abspath $(HTML))"

test: $(HTML)
	CLOSER_LOOK_PROGRESS=0 BOOK_PROFILE=$(PROFILE) $(PY) -m pytest tests $(SITE)/book \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1800

env: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
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

execute: $(SITE)/.executed
$(SITE)/.executed: $(SOURCES) $(VENV)/.installed | data $(MATHJAX)
	$(PY) -m lib.run execute --profile $(PROFILE) --device $(DEVICE)
	touch $@

html: $(HTML)
$(HTML): $(SITE)/.executed
	$(PY) -m lib.run build --profile $(PROFILE)

clean:
	rm -rf _build
