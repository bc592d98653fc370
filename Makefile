# The two commands of the README:
#   make run    set up .venv (first time) and run the default suite
#   make test   set up .venv and the test tools (first time) and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
SUITE ?= digits
PYTEST_ARGS ?=
# The Olivetti faces cache for offline machines sits beside the checkout (never copied in).
SCIKIT_LEARN_DATA ?= $(abspath ../shared/datasets/scikit_learn_data)
export SCIKIT_LEARN_DATA

.PHONY: setup run test browser lint clean docs-tables site

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[test]"
	# facenet-pytorch pins ancient torch/numpy/Pillow; it works with ours (pip warns, expected).
	$(PY) -m pip install --quiet --no-deps facenet-pytorch==2.6.0
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/lsmia-bench run --suite $(SUITE)

# Debian's Chromium for the leaderboard's browser tests (no browser download by a test tool).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium chromium-driver"; fi; }

# pytest exits 5 when it collects no tests; make treats that as a failure like any other.
test: setup browser
	$(PY) -m pytest $(PYTEST_ARGS)

# Every results table in README.md and docs/ from recorded results (tools/docs_tables.py);
# RESULTS=DIR first records the newest report of each suite in that results folder.
RESULTS ?=
docs-tables:
	python3 tools/docs_tables.py $(if $(RESULTS),--record $(RESULTS))

lint: setup
	$(VENV)/bin/ruff check .

# The shared leaderboard from the committed entry records (leaderboard/entries/) alone, into
# SITE_OUT, ready for any static host (docs/leaderboard.md); no results folder, no network.
SITE_OUT ?= public
site: setup
	$(VENV)/bin/lsmia-bench leaderboard build --records-only --out $(SITE_OUT)

clean:
	rm -rf results site .pytest_cache
