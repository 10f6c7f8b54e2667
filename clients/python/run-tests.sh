#!/usr/bin/env bash
# Runs the Python client's test suite from the repository root with Debian's python3
# (/usr/bin/python3 is the interpreter python3-grpcio, python3-protobuf, python3-numpy,
# python3-torch and python3-pytest belong to; a python3 earlier on PATH may lack them).
# Starts real daemons from dist/ (built with `npm run build` if missing). Extra arguments
# go to pytest. Exits non-zero on any failure, and when no test ran (pytest's exit 5).
set -uo pipefail
cd "$(dirname "$0")/../.."
python="${CKPTD_PYTHON:-/usr/bin/python3}"
"$python" -m pytest -q -p no:cacheprovider clients/python/tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "clients/python/run-tests.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
