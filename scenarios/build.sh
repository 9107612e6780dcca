#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build.sh [OUTDIR] - build every built-in scenario's kernel slice.
#
# Runs "patchtrace build" (internal/slicebuild) over every
# scenarios/<id>/scenario.toml: the base, the libraries the scenario's
# uses = [...] names, then its own sources, compiled with the flags of
# docs/slice-abi.md by the system cc and linked by ld with base/slice.lds,
# every instruction checked with the emulator's decoder. The ELFs go to
# OUTDIR/<id>/<id>.elf (default OUTDIR: this directory, i.e. in place). The
# output is deterministic; TestRebuild checks the embedded ELFs against it.
# Override the tools with CC and LD.

set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-}
cd "$here"
dirs=()
for toml in */scenario.toml; do
	dirs+=("scenarios/${toml%/scenario.toml}")
done
cd "$here/.."
if [ -n "$out" ]; then
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	exec go run ./cmd/patchtrace build --out "$out" "${dirs[@]}"
fi
exec go run ./cmd/patchtrace build "${dirs[@]}"
