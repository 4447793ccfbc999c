# Every target creates .venv on first use, so each is one command on a fresh machine.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

$(VENV_STAMP): requirements-torch.txt requirements-lock.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-torch.txt
	$(PY) -m pip install -q -r requirements-lock.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(VENV_STAMP)

.PHONY: setup demo test test-slow lint bench
setup: $(VENV_STAMP)

demo: $(VENV_STAMP)
	$(PY) -m sparsecoder.demo

test: $(VENV_STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q

test-slow: $(VENV_STAMP)
	$(PY) -m pytest -q -m slow

lint: $(VENV_STAMP)
	$(PY) -m ruff check src tests benchmarks

bench: $(VENV_STAMP)
	$(PY) -m pip install -q spams-bin==2.6.14 tensorboardX==2.6.5
	$(PY) benchmarks/bench_sparse_encode.py
