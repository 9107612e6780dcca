package format

// FamilyQuery is a documented question over one of the version 4 column
// families (the register deltas, the load rows), answered twice: in
// DuckDB SQL and in polars, over the Parquet export. docs/trace-format.md
// prints both; an interop test (cmd/patchtrace TestFamilyQueries) runs
// them as printed on a catalog trace and checks that they answer what
// `patchtrace events` and replay's reconstruction say.
type FamilyQuery struct {
	Family string // the columns it is about
	Title  string
	// CPU and Seq are the constants the query text uses (cpu = CPU,
	// seq <= Seq).
	CPU int
	Seq uint64
	// SQL is DuckDB SQL reading 'trace.parquet'; Polars is Python that
	// reads "trace.parquet" and leaves the answer in `result`, a polars
	// DataFrame with the same columns.
	SQL, Polars string
}

// FamilyQueries are the queries of docs/trace-format.md's "Registers and
// loads" section.
var FamilyQueries = []FamilyQuery{
	{
		Family: "reg_*", Title: "Every register of cpu 1 right after seq 5000 (the fold rule)",
		CPU: 1, Seq: 5000,
		SQL: `SELECT printf('%x', max_by(COLUMNS('^reg_'),
                         CASE WHEN COLUMNS('^reg_') IS NOT NULL THEN seq END))
FROM read_parquet('trace.parquet')
WHERE cpu = 1 AND seq <= 5000;`,
		Polars: `import polars as pl
result = (pl.scan_parquet("trace.parquet")
          .filter((pl.col("cpu") == 1) & (pl.col("seq") <= 5000))
          .sort("seq")
          .select(pl.col("^reg_.*$").drop_nulls().last())
          .collect())`,
	},
	{
		Family: "load", Title: "The last word cpu 1 loaded at or before seq 5000, and the store that last wrote it",
		CPU: 1, Seq: 5000,
		SQL: `WITH l AS (
    SELECT seq, addr, size, new FROM read_parquet('trace.parquet')
    WHERE kind = 'load' AND cpu = 1 AND seq <= 5000
    ORDER BY seq DESC LIMIT 1)
SELECT l.seq AS load_seq, printf('%x', l.addr) AS addr, l.size, printf('%x', l.new) AS value,
       w.seq AS writer_seq, w.cpu AS writer_cpu, printf('%x', w.rip) AS writer_rip,
       printf('%x', w.new) AS stored
FROM l LEFT JOIN read_parquet('trace.parquet') w
  ON w.kind = 'write' AND w.seq < l.seq AND w.addr < l.addr + l.size AND w.addr + w.size > l.addr
ORDER BY w.seq DESC NULLS LAST LIMIT 1;`,
		Polars: `import polars as pl
df = pl.scan_parquet("trace.parquet")
load = (df.filter((pl.col("kind") == "load") & (pl.col("cpu") == 1) & (pl.col("seq") <= 5000))
          .sort("seq").last().collect())
seq, addr, size = load["seq"][0], load["addr"][0], load["size"][0]
result = (df.filter((pl.col("kind") == "write") & (pl.col("seq") < seq)
                    & (pl.col("addr") < addr + size) & (pl.col("addr") + pl.col("size") > addr))
            .sort("seq").last()
            .select(pl.lit(seq).alias("load_seq"), pl.lit(addr).alias("addr"),
                    pl.lit(size).alias("size"), pl.lit(load["new"][0]).alias("value"),
                    pl.col("seq").alias("writer_seq"), pl.col("cpu").alias("writer_cpu"),
                    pl.col("rip").alias("writer_rip"), pl.col("new").alias("stored"))
            .collect())`,
	},
}
