#!/usr/bin/env bash
# The Python package's tests, on a fresh machine: a venv under the target directory with the
# pinned test tools (python/requirements-test.txt), the package built by maturin with the `ci`
# profile (a dev build: never --release in CI) and installed from its wheel, ruff and mypy on
# the Python sources, the stubs checked against the module (mypy.stubtest), then pytest
# (python/tests) against a real orbitmq standalone that the fixtures start. ORBITMQ_BIN: the
# server binary (default: built here).
#
# Usage: python/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
VENV=$TARGET/venv-python
step() { printf -- '--> %s\n' "$*" >&2; }

step "venv $VENV: maturin, pytest, mypy, the official client"
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
if ! cmp -s python/requirements-test.txt "$VENV/.orbitmq-requirements"; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r python/requirements-test.txt
  cp python/requirements-test.txt "$VENV/.orbitmq-requirements"
fi

step "build the orbitmq wheel (profile ci) and install it"
WHEELS=$TARGET/wheels-python
rm -rf "$WHEELS"
"$VENV/bin/maturin" build -q -m python/Cargo.toml --profile ci -i "$VENV/bin/python" -o "$WHEELS"
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEELS"/orbitmq-*.whl

if [[ -z ${ORBITMQ_BIN:-} ]]; then
  step "build the server (profile ci)"
  cargo build -q -p orbitmq-server --profile ci
  export ORBITMQ_BIN=$TARGET/ci/orbitmq
fi

step "lint: ruff (check, format), mypy on the package"
PY_FILES=(python/python python/tests examples/python tests/perf/python_vs_official.py)
"$VENV/bin/ruff" check -q --config python/pyproject.toml "${PY_FILES[@]}"
"$VENV/bin/ruff" format -q --check --config python/pyproject.toml "${PY_FILES[@]}"
"$VENV/bin/python" -m mypy python/python/orbitmq

step "stubs: mypy.stubtest orbitmq"
# From another directory, so that the installed package is the one imported.
(cd "$TARGET" && "$VENV/bin/python" -m mypy.stubtest orbitmq \
  --allowlist "$REPO/python/stubtest-allowlist.txt")

step "pytest python/tests"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -c python/pyproject.toml --rootdir python python/tests "$@"
rc=$?
set -e
# Exit 5: no test collected, which is a failure here.
if [[ $rc -eq 5 ]]; then echo "pytest collected no tests" >&2; exit 1; fi
exit $rc
