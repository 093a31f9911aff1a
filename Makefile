# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SVQCAST := $(VENV)/bin/svqcast
# The CPU build of torch (2.13.0) lies on local disk; asking for it first keeps pip from
# fetching a multi-GB CUDA build to satisfy the project's `torch>=2.1`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv test demo study bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest

demo: venv
	$(SVQCAST) models describe weatherbench-s-t2m_gsta_svq

bench: venv
	$(PY) benchmarks/svq_bench.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
