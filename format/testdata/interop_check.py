#!/usr/bin/env python3
"""Interop check for patchtrace traces, with readers patchtrace did not write.

usage: interop_check.py TRACE.arrow TRACE.parquet EXPECTED.json

- pyarrow opens the zstd-compressed Arrow IPC file; its row count, per-kind and
  per-CPU counts and metadata equal EXPECTED (what the Go reader says);
- DuckDB reads the Parquet export; its per-kind counts and an aggregate equal
  EXPECTED, and every example query of docs/trace-format.md
  (testdata/duckdb_queries.sql, next to this script) runs.

EXPECTED is JSON: {"rows": N, "kinds": {"insn": n, ...}, "cpus": {"0": n, ...},
"max_seq": N, "metadata": {"patchtrace.status": "complete", ...}}.
Prints one line per check and "N passed, M failed"; exits 1 on any failure.
"""
import collections
import json
import pathlib
import sys

import duckdb
import pyarrow.ipc as ipc


def main(arrow_path, parquet_path, expected_path):
    exp = json.loads(pathlib.Path(expected_path).read_text())
    results = []

    def check(name, got, want):
        ok = got == want
        results.append(ok)
        print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": got {got!r}, want {want!r}"))

    # pyarrow: the .arrow file.
    with ipc.open_file(arrow_path) as f:
        md = {k.decode(): v.decode() for k, v in f.schema.metadata.items()}
        nbatches = f.num_record_batches
        table = f.read_all()
    check("pyarrow rows", table.num_rows, exp["rows"])
    check("pyarrow kinds", dict(collections.Counter(table.column("kind").to_pylist())), exp["kinds"])
    check("pyarrow cpus", {str(k): v for k, v in collections.Counter(table.column("cpu").to_pylist()).items()}, exp["cpus"])
    check("pyarrow max seq", max(table.column("seq").to_pylist(), default=None), exp["max_seq"])
    for k, v in exp["metadata"].items():
        check(f"pyarrow metadata {k}", md.get(k), v)
    check("pyarrow batch index", len(json.loads(md["patchtrace.batch_index"])), nbatches)

    # DuckDB: the Parquet export.
    con = duckdb.connect()
    rows = con.execute("SELECT kind, count(*) FROM read_parquet(?) GROUP BY kind", [parquet_path]).fetchall()
    check("duckdb kinds", {k: n for k, n in rows}, exp["kinds"])
    rows = con.execute("SELECT cpu, count(*) FROM read_parquet(?) GROUP BY cpu", [parquet_path]).fetchall()
    check("duckdb cpus", {str(c): n for c, n in rows}, exp["cpus"])
    (n, mx), = con.execute("SELECT count(*), max(seq) FROM read_parquet(?)", [parquet_path]).fetchall()
    check("duckdb rows", n, exp["rows"])
    check("duckdb max seq", mx, exp["max_seq"])
    kv = dict(con.execute(
        "SELECT decode(key), decode(value) FROM parquet_kv_metadata(?)", [parquet_path]).fetchall())
    for k, v in exp["metadata"].items():
        check(f"duckdb metadata {k}", kv.get(k), v)

    # Every documented query runs.
    sql = (pathlib.Path(__file__).parent / "duckdb_queries.sql").read_text()
    for block in sql.split("\n-- kind: ")[1:]:
        kind, query = block.split("\n", 1)
        query = query.replace("'trace.parquet'", "'" + str(parquet_path).replace("'", "''") + "'")
        try:
            con.execute(query).fetchall()
            results.append(True)
            print(f"ok   duckdb doc query for {kind}")
        except Exception as e:  # noqa: BLE001 - report any failure
            results.append(False)
            print(f"FAIL duckdb doc query for {kind}: {e}")

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
