# Quick start: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup setup-test demo test lint format store-status store-stop bench

setup:
	@bash scripts/setup_venv.sh

# Extra parts the tests drive for real: a Milvus standalone server, a vLLM CPU
# server, headless Chromium.
setup-test: setup
	@bash scripts/setup_test_services.sh

demo: setup
	$(PY) -m plugin.demo

test: setup-test
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	$(PY) -m pytest

format: setup
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

store-status: setup
	$(PY) -m plugin.milvus status

store-stop: setup
	$(PY) -m plugin.milvus stop
