# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SVQCAST := $(VENV)/bin/svqcast
# torch is installed first, on its own, so that pip never resolves the project's `torch>=2.1` by
# itself. On a plain Linux machine PyPI's torch wheel is the multi-GB CUDA build: for a CPU-only
# install give the PyTorch CPU wheel index, e.g.
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (where a CPU wheel is already the one pip finds, as on this project's CI machines, leave it empty).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: venv test lint demo study bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest

# The lint gate CI runs before the tests: ruff (pyflakes, pycodestyle, isort, bugbear), mypy, and the
# import-linter layer contracts of pyproject.toml (docs/architecture.md).
lint: venv
	$(VENV)/bin/ruff check svqcast tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The bundled model forecasts 24 h of UK 2 m temperature from 29 March 2019 00 UTC (held-out
# week of the embedded ERA5 sample; 12 h trained horizon + 12 h autoregressive), then maps
# forecast, truth and error. Writes forecast.nc and forecast.png.
DEMO_INPUT := svqcast/data/samples/era5_uk_t2m_2019-03.nc
demo: venv
	$(SVQCAST) predict $(DEMO_INPUT) -o forecast.nc --init-time 2019-03-29T00:00 --lead-time 24h --overwrite
	MPLBACKEND=Agg $(SVQCAST) plot forecast.nc --truth $(DEMO_INPUT) -o forecast.png --overwrite

bench: venv
	$(PY) benchmarks/svq_bench.py

# The SVQ study (docs/results.md): trains the model family at the zoo models' size to early
# stopping on the embedded era5-uk-t2m, nyc-taxi and nyc-bike samples (3 seeds, plus the codebook
# ablation on nyc-bike), two runs at a time; resumes where an earlier call stopped (hours: see
# docs/results.md for the machine time so far).
study: venv
	$(PY) benchmarks/study.py --jobs 2 --threads 1

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
