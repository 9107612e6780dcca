#!/usr/bin/env bash
# Builds the Unicorn harness (src/ucbench.c) with the system C compiler
# against libunicorn: build.sh [OUT] (default build/ucbench beside this
# script). Exit 3, with a message saying what to install, when gcc or
# libunicorn's headers and library are missing (the smoke test skips on 3);
# any other failure is a real build error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build/ucbench}
if ! command -v gcc >/dev/null; then
  echo "build.sh: gcc is not installed (apt-get install gcc)" >&2
  exit 3
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <unicorn/unicorn.h>\nint main(void) { return uc_version(0, 0) == 0; }\n' >"$probe/p.c"
if ! gcc -o "$probe/p" "$probe/p.c" -lunicorn 2>"$probe/err"; then
  echo "build.sh: libunicorn is not installed (apt-get install libunicorn-dev): $(head -c 300 "$probe/err")" >&2
  exit 3
fi
mkdir -p "$(dirname "$out")"
gcc -O2 -Wall -Wextra -Werror -o "$out" "$here/src/ucbench.c" -lunicorn
