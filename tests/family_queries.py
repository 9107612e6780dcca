"""Runs the register and load queries of docs/trace-format.md as printed
(DuckDB SQL and polars, from the JSON the Go test writes from
format.FamilyQueries) over a Parquet export, and prints each answer as
JSON: {title: {"duckdb": [row, ...], "polars": [row, ...]}}.

usage: family_queries.py TRACE.parquet QUERIES.json
"""
import json
import sys

import duckdb


def main():
    pq, queries = sys.argv[1], json.load(open(sys.argv[2]))
    out = {}
    for q in queries:
        sql = q["SQL"].replace("'trace.parquet'", "'" + pq.replace("'", "''") + "'")
        rel = duckdb.sql(sql)
        cols = rel.columns
        duck = [dict(zip(cols, row)) for row in rel.fetchall()]
        ns = {}
        exec(q["Polars"].replace('"trace.parquet"', json.dumps(pq)), ns)
        out[q["Title"]] = {"duckdb": duck, "polars": ns["result"].to_dicts()}
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
