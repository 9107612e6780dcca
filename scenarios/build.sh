#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build.sh [OUTDIR] - build every built-in scenario's kernel slice.
#
# For each scenarios/<id>/scenario.toml, compiles scenarios/base/*.{S,c},
# the shared libraries scenarios/<id>/uses names (scenarios/lib/<name>/) and
# scenarios/<id>/*.{S,c} with the flags of docs/slice-abi.md, links them with
# base/slice.lds into OUTDIR/<id>/<id>.elf (default OUTDIR: this directory,
# i.e. in place), and checks that every instruction in the result is one the
# emulator implements.
#
# Files named *.fentry.c are ftrace-able: they are also compiled with
# -pg -mfentry -mnop-mcount -mrecord-mcount, so each function in them starts
# with a 5-byte nop listed in __mcount_loc. Mark functions there that must
# not be sites "notrace".
#
# The output is deterministic: sources are compiled by relative path from
# this directory in a fixed order, without debug info, .comment or build-id,
# so a rebuild anywhere is byte-identical (build_test.go checks it against
# the embedded ELFs). Override the tools with CC, LD, OBJDUMP.

set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here}
mkdir -p "$out"
out=$(cd "$out" && pwd)

CC=${CC:-cc}
LD=${LD:-ld}
OBJDUMP=${OBJDUMP:-objdump}

CFLAGS=(
	-std=gnu11 -O2 -Wall -Werror
	# docs/slice-abi.md
	-ffreestanding -fno-pic -mcmodel=kernel -mno-red-zone -mgeneral-regs-only
	-fno-asynchronous-unwind-tables -fno-stack-protector -fno-builtin -nostdinc
	-fcf-protection=none -fno-jump-tables
	# as the kernel: 8-byte stack alignment (entry code and trampolines
	# push odd numbers of words), no common symbols, no type-based aliasing
	-mpreferred-stack-boundary=3 -fno-common -fno-strict-aliasing
	-fno-stack-clash-protection
	# keep loops loops, not calls to memset/memcpy
	-fno-tree-loop-distribute-patterns
)
FENTRY_CFLAGS=(-pg -mfentry -mnop-mcount -mrecord-mcount)
LDFLAGS=(
	-nostdlib -static --build-id=none -T base/slice.lds
	-z max-page-size=4096 -z noexecstack --orphan-handling=error
)

# The native service stubs: the only functions allowed to contain ud2.
NATIVES="text_poke set_memory_ro set_memory_rw set_memory_x set_memory_nx module_alloc pt_send_ipi panic pt_bug pt_marker pt_switch pt_cpu_done"

# check_insns ELF: fail on any instruction outside the emulator's set
# (the instructions emu/decode.go implements), printing each offender.
check_insns() {
	"$OBJDUMP" -d --no-show-raw-insn -w "$1" | awk -v natives="$NATIVES" '
	BEGIN {
		n = split(natives, a, " ")
		for (i = 1; i <= n; i++)
			native[a[i]] = 1
		plain = "^(" \
			"mov[bwlq]?|movabs[bwlq]?|movz[bw][wlq]|movs[bw][wlq]|movslq|lea[lq]?|" \
			"(add|sub|adc|sbb|and|or|xor|cmp|test|inc|dec|neg|not)[bwlq]?|" \
			"(shl|shr|sar|sal|imul)[bwlq]?|" \
			"set[a-z]+|cmov[a-z]+[wlq]?|j[a-z][a-z]?[a-z]?|" \
			"(push|pop)[wq]?|pushfq?|popfq?|" \
			"call[q]?|ret[q]?|int3|iretq|sti|cli|hlt|pause|nop[wlq]?|" \
			"cpuid|lfence|sfence|mfence|" \
			"(xchg|xadd|cmpxchg)[bwlq]?|bt[src]?[wlq]?|" \
			"cqto|cltq|leave[q]?|ud2" \
			")$"
		locked = "^(add|inc|dec|xadd|cmpxchg)[bwlq]?$"
		string = "^(movs|stos)[bwlq]?$"
		bad = 0
	}
	/^[0-9a-f]+ <[^>]+>:$/ {
		fn = $2
		gsub(/[<>:]/, "", fn)
		next
	}
	/^ *[0-9a-f]+:\t/ {
		addr = $1
		sub(/:$/, "", addr)
		insn = $0
		sub(/^ *[0-9a-f]+:\t/, "", insn)
		nw = split(insn, w, /[ \t]+/)
		i = 1
		lock = rep = 0
		# prefixes objdump prints as words
		while (i < nw && w[i] ~ /^(lock|rep|repz|repe|cs|ds|data16)$/) {
			if (w[i] == "lock")
				lock = 1
			if (w[i] ~ /^rep/)
				rep = 1
			i++
		}
		m = w[i]
		ok = 0
		if (rep)
			ok = (m ~ string)
		else if (lock)
			ok = (m ~ locked)
		else if (m == "ud2")
			ok = (fn in native)
		else
			ok = (m ~ plain)
		if (!ok) {
			printf "  %s <%s>: %s\n", addr, fn, insn
			bad = 1
		}
	}
	END { exit bad }
	'
}

cd "$here"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

shopt -s nullglob
built=0
for toml in */scenario.toml; do
	id=${toml%/scenario.toml}

	# The scenario file must name the ELF this script produces.
	if ! grep -Eq "^slice *= *\"$id\\.elf\"" "$toml"; then
		echo "build.sh: $toml: slice must be \"$id.elf\"" >&2
		exit 1
	fi

	mkdir -p "$tmp/$id"
	objs=()
	srcs=(base/*.S base/*.c)
	incs=(-Ibase)
	# Shared code: each line of <id>/uses names a directory lib/<name>
	# whose sources are linked in too (the ftrace model, trampolines).
	if [ -f "$id/uses" ]; then
		while read -r lib; do
			[ -n "$lib" ] || continue
			if [ ! -d "lib/$lib" ]; then
				echo "build.sh: $id/uses: no lib/$lib" >&2
				exit 1
			fi
			srcs+=(lib/"$lib"/*.S lib/"$lib"/*.c)
			incs+=(-Ilib/"$lib")
		done <"$id/uses"
	fi
	srcs+=("$id"/*.S "$id"/*.c)
	incs+=(-I"$id")
	for src in "${srcs[@]}"; do
		obj="$tmp/$id/${src//\//__}.o"
		flags=("${CFLAGS[@]}" "${incs[@]}")
		case "$src" in
		*.S) flags+=(-D__ASSEMBLY__) ;;
		*.fentry.c) flags+=("${FENTRY_CFLAGS[@]}") ;;
		esac
		"$CC" "${flags[@]}" -c "$src" -o "$obj"
		objs+=("$obj")
	done

	"$LD" "${LDFLAGS[@]}" -o "$tmp/$id/$id.elf" "${objs[@]}"

	if ! check_insns "$tmp/$id/$id.elf" >"$tmp/$id/insns"; then
		echo "build.sh: $id: instructions outside the emulator's set:" >&2
		cat "$tmp/$id/insns" >&2
		exit 1
	fi

	mkdir -p "$out/$id"
	cp "$tmp/$id/$id.elf" "$out/$id/$id.elf"
	echo "built $id/$id.elf"
	built=$((built + 1))
done

if [ "$built" -eq 0 ]; then
	echo "build.sh: no scenarios found in $here" >&2
	exit 1
fi
