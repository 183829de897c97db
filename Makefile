# make bench  .venv-bench, then benchmarks/run.py $(BENCH_ARGS) (see benchmarks/README.md).
# make demo   .venv-demo with the package installed, then examples/demo.py (the README's usage
#             example against the bundled local server).
# make test   every tox env (py39..py313 on the built wheel, lowest, schemathesis, integrations,
#             docs, lint, type, arch); envs whose Python is missing are skipped. Uses its own
#             .venv-tox, made from $(PYTHON).
# make dev    .venv: editable install + test, lint and type tools (new modules are picked up).
# make docs   the documentation site into ./site (mkdocs build --strict; tox -e docs).
# make lint / make type / make arch   one tox env each.
# make clean  remove build output and caches (keeps the venvs); make distclean: the venvs too.
#
# The source tree is importable as it stands (aligneai/core and aligneai/transports are links to
# the top-level folders): `pytest`, `python -m pytest`, `mypy` and `python -m aligneai` work from
# here. tox still tests the built wheel.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TOX_VENV ?= .venv-tox
TOX := $(TOX_VENV)/bin/tox
# Two cores: two envs at a time. `make test TOX_PARALLEL=0` runs them one after the other.
TOX_PARALLEL ?= 2
TOX_ARGS ?=

# With pyenv, make every installed CPython 3 resolvable as python3.X for tox: the current default
# first (so `python3` stays what it was), then the newest first. Nothing changes without pyenv.
ifneq ($(shell command -v pyenv 2>/dev/null),)
empty :=
space := $(empty) $(empty)
PYENV_CURRENT := $(subst :, ,$(shell pyenv version-name 2>/dev/null))
PYENV_ALL := $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.[0-9]+\.[0-9]+$$' \
	| sort -t. -k1,1nr -k2,2nr -k3,3nr)
PYENV_VERSION := $(subst $(space),:,$(strip $(PYENV_CURRENT) $(filter-out $(PYENV_CURRENT),$(PYENV_ALL))))
export PYENV_VERSION
endif

.PHONY: test demo bench dev docs lint type arch clean distclean

$(TOX): requirements/tox.txt
	rm -rf $(TOX_VENV)
	$(PYTHON) -m venv $(TOX_VENV)
	$(TOX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/tox.txt
	touch $(TOX)

test: $(TOX)
	@# setuptools never empties build/lib: a deleted module would still reach the wheel.
	rm -rf build/lib build/bdist.*
ifeq ($(TOX_PARALLEL),0)
	$(TOX) run $(TOX_ARGS)
else
	$(TOX) run-parallel --parallel $(TOX_PARALLEL) --parallel-no-spinner $(TOX_ARGS)
endif

dev:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r requirements/test.txt -r requirements/lint.txt -r requirements/type.txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-e '.[aiohttp,numpy,orjson,parquet,tqdm]'
	@echo "dev: $(VENV) ready. Tests: $(VENV)/bin/pytest   Types: $(VENV)/bin/mypy   Lint: $(VENV)/bin/ruff check ."

# The documentation site (mkdocs build --strict) into ./site; `make test` builds it too.
docs: $(TOX)
	$(TOX) run -e docs

lint: $(TOX)
	$(TOX) run -e lint

type: $(TOX)
	$(TOX) run -e type

arch: $(TOX)
	$(TOX) run -e arch

# Benchmarks against the floor (raw urllib3/aiohttp) and the peer (openai), in their own venv.
BENCH_VENV ?= .venv-bench
BENCH_ARGS ?=
bench:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r benchmarks/requirements.txt
	rm -rf build/lib build/bdist.*
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--force-reinstall --no-deps .
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check '.[aiohttp,numpy,orjson]'
	$(BENCH_VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)

# The README's main job: the usage example against the bundled local server (no key, no network).
DEMO_VENV ?= .venv-demo
demo:
	test -x $(DEMO_VENV)/bin/python || $(PYTHON) -m venv $(DEMO_VENV)
	rm -rf build/lib build/bdist.*
	$(DEMO_VENV)/bin/python -m pip install --quiet --disable-pip-version-check .
	$(DEMO_VENV)/bin/python examples/demo.py

# build/__editable__.* holds the link tree of the strict editable install in .venv: keep it.
clean:
	rm -rf build/lib build/bdist.* dist site *.egg-info .tox .mypy_cache .ruff_cache .pytest_cache \
		.hypothesis
	find . -name __pycache__ -type d -not -path './.venv*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf build $(VENV) $(TOX_VENV) $(DEMO_VENV) $(BENCH_VENV)
