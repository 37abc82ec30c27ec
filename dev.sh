#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv, installs what is needed, runs the task.
#   ./dev.sh demo     the main demo (xinit demo)
#   ./dev.sh test     the test suite, less the cases marked slow
#   ./dev.sh test-slow  the cases marked slow (full-size models, every family in every framework)
#   ./dev.sh bench    the benchmark suite (benchmarks/)
#   ./dev.sh mutants  the curated semantic mutants (tools/mutants.toml), each against the tests
#                     of its area, in a temporary copy of the tree: table and mutation score
#   ./dev.sh test-torch-only   the suite in .venv-torch, which has torch and no paddle or flax:
#                     every paddle and flax case must skip cleanly
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
task=${1:-demo}
if [ "$task" = test-torch-only ]; then
  if [ ! -f .venv-torch/.xinit-installed ] || [ pyproject.toml -nt .venv-torch/.xinit-installed ]; then
    "$PY" -m venv .venv-torch
    .venv-torch/bin/python -m pip install -q --upgrade pip
    .venv-torch/bin/python -m pip install -q torch==2.13.0
    .venv-torch/bin/python -m pip install -q -e ".[torch,io,plot,test]"
    touch .venv-torch/.xinit-installed
  fi
  shift
  exec .venv-torch/bin/python -m pytest -n 2 -q -p no:cacheprovider "$@"
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.xinit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # The pinned CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e ".[dev]"
  # real models for tests/models/test_real_models.py, beside the pinned torch (no weights fetched)
  .venv/bin/python -m pip install -q --no-deps torchvision==0.28.0 timm==1.0.31
  touch "$stamp"
fi
shift || true
case "$task" in
  demo)  exec .venv/bin/xinit demo "$@" ;;
  test)  exec .venv/bin/python -m pytest -n 2 -q "$@" ;;
  # two processes: a worker holding every full-size model in turn grew past 19 GB (OOM-killed
  # at the traced vgg11); the trace cases and the others each peak near 8 and 18 GB together
  test-slow) .venv/bin/python -m pytest -n 2 -q -m slow tests/trace "$@" &&
    exec .venv/bin/python -m pytest -n 2 -q -m slow --ignore=tests/trace "$@" ;;
  bench) exec .venv/bin/python -m benchmarks "$@" ;;
  mutants) exec .venv/bin/python tools/mutants.py "$@" ;;
  lint)  .venv/bin/ruff check . && exec .venv/bin/ruff format --check . ;;
  *) echo "usage: ./dev.sh demo|test|test-slow|test-torch-only|bench|mutants|lint" >&2; exit 2 ;;
esac
