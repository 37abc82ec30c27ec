#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv, installs what is needed, runs the task.
#   ./dev.sh demo     the main demo (xinit demo)
#   ./dev.sh test     the whole test suite
#   ./dev.sh bench    the benchmark suite (benchmarks/)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.xinit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # The pinned CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
task=${1:-demo}
shift || true
case "$task" in
  demo)  exec .venv/bin/xinit demo "$@" ;;
  test)  exec .venv/bin/python -m pytest -n 2 -q "$@" ;;
  bench) exec .venv/bin/python -m benchmarks "$@" ;;
  lint)  .venv/bin/ruff check . && exec .venv/bin/ruff format --check . ;;
  *) echo "usage: ./dev.sh demo|test|bench|lint" >&2; exit 2 ;;
esac
