#!/usr/bin/env bash
# Sets patchtrace's emulation and recording speed beside libunicorn's on the
# same guest (scenarios/bench-fentry's slice ELF), measured in one invocation
# with the runs interleaved (A B A B ...) so that load from other processes
# hits both alike, and prints issue 16's ratios. Speed is never asserted:
# this prints figures, it does not pass or fail on them.
#
#   bench/unicorn/compare.sh            # ROUNDS=5 ITERS=1000000
#
# Env: ROUNDS  interleaved rounds (default 5; medians are reported)
#      ITERS   bench_iters, 20.5 guest instructions each (default 1000000)
#      BASE    another patchtrace binary (e.g. a build of an earlier commit)
#              run in the same rounds: its figures and ratios are printed
#              beside this tree's (before/after under the same load)
# Installs libunicorn-dev (Debian) when missing and run as root.
# Each round's raw figures go to build/compare.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ROUNDS=${ROUNDS:-5}
ITERS=${ITERS:-1000000}

if ! dpkg-query -W -f='${Status}' libunicorn-dev 2>/dev/null | grep -q 'ok installed'; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing libunicorn-dev" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libunicorn-dev gcc >/dev/null
  else
    echo "compare.sh: libunicorn-dev is missing: run as root or apt-get install libunicorn-dev" >&2
    exit 1
  fi
fi
"$here/build.sh" "$here/build/ucbench"
(cd "$root" && CGO_ENABLED=0 go build -o "$here/build/patchtrace" ./cmd/patchtrace)
elf="$root/scenarios/bench-fentry/bench-fentry.elf"
log="$here/build/compare.log"
: >"$log"

pt() { "$here/build/patchtrace" bench --no-analyze --iters "$ITERS" --json | jq -c '{round: '"$1"', patchtrace: .}' >>"$log"; }
base() { if [ -n "${BASE:-}" ]; then "$BASE" bench --no-analyze --iters "$ITERS" --json | jq -c '{round: '"$1"', base: .}' >>"$log"; fi; }
uc() { "$here/build/ucbench" "$elf" "$ITERS" "$2" | awk -v r="$1" '{printf "{\"round\": %d, \"unicorn\": {\"mode\": \"%s\", \"insns\": %s, \"seconds\": %s, \"minstr\": %s, \"cpu_seconds\": %s, \"cpu_minstr\": %s, \"slot\": %s, \"result\": %s}}\n", r, $2, $3, $4, $5, $6, $7, $8, $9}' >>"$log"; }

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  if [ $((r % 2)) = 1 ]; then
    pt "$r"; uc "$r" nohook; base "$r"; uc "$r" trace+memw
  else
    uc "$r" trace+memw; base "$r"; uc "$r" nohook; pt "$r"
  fi
done

python3 - "$log" "$ITERS" <<'PY'
import json, os, statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    r = rounds.setdefault(d["round"], {})
    for who, prefix in (("patchtrace", ""), ("base", "base: ")):
        for f in d.get(who, []):
            r[prefix + f["name"]] = (f["value"], f.get("cpu_value", 0))
    if "unicorn" in d:
        u = d["unicorn"]
        r["unicorn " + u["mode"]] = (u["minstr"], u["cpu_minstr"])
        r["unicorn " + u["mode"] + " result"] = (u["slot"], u["result"])
rs = [rounds[k] for k in sorted(rounds)]
res = {r["unicorn nohook result"] for r in rs} | {r["unicorn trace+memw result"] for r in rs}
if len(res) != 1:
    sys.exit("compare.sh: Unicorn's runs disagree on bench_slot/bench_result: %s" % res)

def have(key):
    return all(key in r for r in rs)

def med(key, i):
    return statistics.median(r[key][i] for r in rs)

def ratio(a, b, i):
    xs = sorted(r[a][i] / r[b][i] for r in rs if r[b][i] > 0)
    return "%5.2fx (%4.2f..%4.2f)" % (statistics.median(xs), xs[0], xs[-1]) if xs else "   n/a"

load = os.getloadavg()
print("patchtrace vs libunicorn on bench-fentry, %s iterations, %d interleaved rounds" % (sys.argv[2], len(rs)))
print("host: %d CPUs, load average %.2f %.2f %.2f at the end" % ((os.cpu_count(),) + load))
print("figures: medians over rounds; ratios: median of the per-round ratios (range)")
print("wall: instructions per second of wall time; cpu: per second of the process's CPU time")
if have("base: emulate bench-fentry"):
    print("base: the BASE binary, run in the same rounds")
print()
print("  %-48s %10s %10s" % ("Minstr/s", "wall", "cpu"))
for k in ["emulate bench-fentry", "unicorn nohook", "record bench-fentry",
          "record bench-fentry --no-loads --no-regs", "unicorn trace+memw",
          "emulate text-poke-bp", "record text-poke-bp"]:
    for key in (k, "base: " + k):
        if have(key):
            print("  %-48s %10.2f %10.2f" % (key, med(key, 0), med(key, 1)))
print()
print("  %-58s %-20s %-20s %s" % ("ratio", "wall", "cpu", "target"))
for name, a, b, target in [
    ("record to disk / Unicorn trace+memw", "record bench-fentry", "unicorn trace+memw", ">= 1.3x"),
    ("record --no-loads --no-regs / Unicorn trace+memw", "record bench-fentry --no-loads --no-regs", "unicorn trace+memw", "(what the hooks see)"),
    ("emulate only / Unicorn nohook", "emulate bench-fentry", "unicorn nohook", ">= 2.8x"),
    ("emulate bench-fentry / text-poke-bp (4 CPUs)", "emulate bench-fentry", "emulate text-poke-bp", "<= 1.5x"),
]:
    print("  %-58s %-20s %-20s %s" % (name, ratio(a, b, 0), ratio(a, b, 1), target))
    ba, bb = "base: " + a, b if b.startswith("unicorn") else "base: " + b
    if have(ba) and have(bb):
        print("  %-58s %-20s %-20s" % ("base: " + name, ratio(ba, bb, 0), ratio(ba, bb, 1)))
slot, result = res.pop()
print()
print("Unicorn's final bench_slot %d, bench_result %#x (every run)" % (slot, result))
PY
