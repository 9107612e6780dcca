#!/usr/bin/env bash
# Runs every patchtrace test: Go vet and tests (including the host-CPU
# differential tests and the check that the embedded kernel slices rebuild
# byte-identically), race tests of the concurrent packages, and the Python
# interop checks/notebooks when present. Installs what it needs on a fresh
# machine: Go modules, a C toolchain (Debian packages) and a Python venv.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '== %s\n' "$*"; }

# A C toolchain for the slice rebuild check.
if ! command -v cc >/dev/null || ! command -v ld >/dev/null || ! command -v objdump >/dev/null; then
  say "installing a C toolchain (gcc, binutils)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc binutils >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc binutils >/dev/null
  fi
fi

say "go mod download"
go mod download

say "go vet"
go vet ./...

say "CLI builds without cgo"
CGO_ENABLED=0 go build -o /dev/null ./cmd/patchtrace

say "go test"
CI=${CI:-} go test -count=1 ./...

if [ -f requirements.txt ]; then
  say "python interop (pyarrow, duckdb) in .venv"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  .venv/bin/pip install -q -r requirements.txt
  if [ -x tests/interop.sh ]; then
    PYTHON=.venv/bin/python tests/interop.sh
  fi
fi
