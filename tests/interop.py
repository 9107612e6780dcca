"""Checks patchtrace traces with readers patchtrace did not write.

usage: interop.py TRACE.arrow TRACE.parquet INSPECT.json
- pyarrow opens the zstd Arrow IPC file; its per-kind and per-CPU row counts
  must equal `patchtrace inspect --json`;
- DuckDB reads the Parquet export; its per-kind counts and an aggregate
  (instructions and #BP deliveries per CPU, writes through the text-poke
  alias) must equal what the Go reader reported (in the JSON's "go_answers").
Exits non-zero with a message on any difference.
"""
import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc


def fail(msg):
    print("interop: FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def main(arrow_path, parquet_path, inspect_path):
    want = json.load(open(inspect_path))
    reader = ipc.open_file(arrow_path)
    table = reader.read_all()
    if table.num_rows != want["events"]:
        fail(f"pyarrow read {table.num_rows} rows, inspect says {want['events']}")
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    if meta.get("patchtrace.scenario") != want["scenario"]:
        fail(f"scenario metadata {meta.get('patchtrace.scenario')!r} != {want['scenario']!r}")
    kinds = {r["kind"]: r["seq_count"] for r in table.group_by("kind").aggregate([("seq", "count")]).to_pylist()}
    if kinds != want["events_by_kind"]:
        fail(f"pyarrow per-kind counts {kinds} != inspect {want['events_by_kind']}")
    cpus = {f"cpu{r['cpu']}": r["seq_count"] for r in table.group_by("cpu").aggregate([("seq", "count")]).to_pylist()}
    if cpus != want["events_by_cpu"]:
        fail(f"pyarrow per-CPU counts {cpus} != inspect {want['events_by_cpu']}")
    seq = table.column("seq").to_numpy()
    if not (seq[1:] > seq[:-1]).all():
        fail("seq is not strictly increasing")

    con = duckdb.connect()
    pq = f"read_parquet('{parquet_path}')"
    dk = dict(con.sql(f"select kind, count(*) from {pq} group by kind").fetchall())
    if dk != want["events_by_kind"]:
        fail(f"DuckDB per-kind counts {dk} != inspect {want['events_by_kind']}")
    go = want["go_answers"]
    insns = {f"cpu{c}": n for c, n in con.sql(f"select cpu, count(*) from {pq} where kind = 'insn' group by cpu").fetchall()}
    if insns != go["insns_by_cpu"]:
        fail(f"DuckDB instructions per CPU {insns} != Go {go['insns_by_cpu']}")
    bps = {f"cpu{c}": n for c, n in con.sql(f"select cpu, count(*) from {pq} where kind = 'trap' and vector = 3 group by cpu").fetchall()}
    if bps != go["int3_by_cpu"]:
        fail(f"DuckDB #BP per CPU {bps} != Go {go['int3_by_cpu']}")
    alias = con.sql(f"select count(*) from {pq} where kind = 'write' and alias").fetchall()[0][0]
    if alias != go["alias_writes"]:
        fail(f"DuckDB alias writes {alias} != Go {go['alias_writes']}")
    print(f"interop: ok: pyarrow {table.num_rows} rows in {reader.num_record_batches} batches; "
          f"DuckDB agrees on {len(dk)} kinds, {len(insns)} CPUs, {alias} alias writes")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
