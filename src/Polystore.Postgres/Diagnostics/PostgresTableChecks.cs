using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>Tables: sequential scans (a missing-index hint), stale statistics, and the buffer cache hit ratio.</summary>
internal static class PostgresTableChecks
{
    private const string SchemaFilter = "($1::text[] IS NULL OR schemaname = ANY($1))";

    public static async Task<IReadOnlyList<Finding>> SeqScansAsync(PostgresContext ctx, CancellationToken ct)
    {
        var o = ctx.Options;
        var rows = await ctx.QueryAsync($"""
            SELECT schemaname, relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), n_live_tup, pg_total_relation_size(relid)
            FROM pg_stat_user_tables
            WHERE seq_scan >= $3 AND n_live_tup >= $4 AND seq_tup_read / greatest(seq_scan, 1) >= $4 / 2
              AND seq_scan > coalesce(idx_scan, 0) AND {SchemaFilter}
            ORDER BY seq_tup_read DESC LIMIT $2
            """, r => (Schema: r.GetString(0), Table: r.GetString(1), Scans: r.Long(2), Read: r.Long(3), IdxScans: r.Long(4), Live: r.Long(5), Size: r.Long(6)),
            ct, ctx.SchemaParameter(), ctx.Limit, o.SeqScanMinScans, o.SeqScanMinRows).ConfigureAwait(false);
        return rows.Select(t => ctx.Finding("postgres.seq_scans", Severity.Warning,
            $"Table {t.Schema}.{t.Table} was read by {t.Scans} sequential scans ({t.Read / Math.Max(1, t.Scans)} rows each on average) against {t.IdxScans} index scans: an index is probably missing",
            Evidence(("schema", t.Schema), ("table", t.Table), ("seq_scan", t.Scans), ("seq_tup_read", t.Read), ("rows_per_seq_scan", t.Read / Math.Max(1, t.Scans)),
                ("idx_scan", t.IdxScans), ("n_live_tup", t.Live), ("total_size", Bytes(t.Size))),
            $"SELECT query, calls, mean_exec_time FROM pg_stat_statements WHERE query ILIKE {PostgresLiteral.Quote("%" + t.Table + "%")} ORDER BY total_exec_time DESC LIMIT 5;\n" +
            $"polystore doctor explain '<that query>'   -- a Seq Scan on {t.Table} with a Filter names the column; then:\n" +
            $"CREATE INDEX CONCURRENTLY ON {PostgresIdentifier.Qualified(t.Schema, t.Table)} (<filtered column>);")).ToList();
    }

    public static async Task<IReadOnlyList<Finding>> StaleStatisticsAsync(PostgresContext ctx, CancellationToken ct)
    {
        var o = ctx.Options;
        var rows = await ctx.QueryAsync($"""
            SELECT schemaname, relname, n_live_tup, n_mod_since_analyze, last_analyze, last_autoanalyze
            FROM pg_stat_user_tables
            WHERE n_mod_since_analyze >= $3 AND n_mod_since_analyze > $4 * greatest(n_live_tup, 1) AND {SchemaFilter}
            ORDER BY n_mod_since_analyze DESC LIMIT $2
            """, r => (Schema: r.GetString(0), Table: r.GetString(1), Live: r.Long(2), Modified: r.Long(3), Manual: r.Time(4), Auto: r.Time(5)),
            ct, ctx.SchemaParameter(), ctx.Limit, o.StaleStatisticsMinRows, o.StaleStatisticsFraction).ConfigureAwait(false);
        return rows.Select(t =>
        {
            var last = (t.Manual, t.Auto) switch
            {
                (null, null) => (DateTime?)null,
                ({ } m, null) => m,
                (null, { } a) => a,
                ({ } m, { } a) => m > a ? m : a,
            };
            var fraction = (double)t.Modified / Math.Max(1, t.Live);
            return ctx.Finding("postgres.stale_statistics", Severity.Warning,
                $"Statistics of {t.Schema}.{t.Table} are stale: {t.Modified} rows changed since {(last is null ? "it was never analyzed" : "the last analyze")} ({Percent(fraction)} of {t.Live} live rows)",
                Evidence(("schema", t.Schema), ("table", t.Table), ("n_live_tup", t.Live), ("n_mod_since_analyze", t.Modified), ("changed_fraction", Percent(fraction)),
                    ("last_analyze", (object?)t.Manual ?? "never"), ("last_autoanalyze", (object?)t.Auto ?? "never")),
                $"ANALYZE {PostgresIdentifier.Qualified(t.Schema, t.Table)};");
        }).ToList();
    }

    public static async Task<IReadOnlyList<Finding>> CacheHitAsync(PostgresContext ctx, CancellationToken ct)
    {
        var row = (await ctx.QueryAsync("""
            SELECT blks_hit, blks_read, current_database(), current_setting('shared_buffers'),
                   (SELECT setting::bigint * pg_size_bytes(unit) FROM pg_settings WHERE name = 'shared_buffers')
            FROM pg_stat_database WHERE datname = current_database()
            """, r => (Hit: r.Long(0), Read: r.Long(1), Db: r.GetString(2), SharedBuffers: r.GetString(3), SharedBytes: r.Long(4)), ct).ConfigureAwait(false))[0];
        var total = row.Hit + row.Read;
        if (total < ctx.Options.CacheHitMinBlocks)
        {
            return [ctx.Finding("postgres.cache_hit", Severity.Info, $"Cache hit ratio not judged yet: only {total} blocks read in {row.Db} since statistics were reset",
                Evidence(("blks_hit", row.Hit), ("blks_read", row.Read), ("min_blocks", ctx.Options.CacheHitMinBlocks)))];
        }
        var ratio = (double)row.Hit / total;
        var low = ratio < ctx.Options.CacheHitWarning;
        var doubled = Math.Max(row.SharedBytes * 2, 128L << 20) >> 20;
        return [ctx.Finding("postgres.cache_hit", low ? Severity.Warning : Severity.Info,
            $"Buffer cache hit ratio in {row.Db}: {Percent(ratio)}",
            Evidence(("database", row.Db), ("hit_ratio", Percent(ratio)), ("blks_hit", row.Hit), ("blks_read", row.Read), ("shared_buffers", row.SharedBuffers),
                ("warning_below", Percent(ctx.Options.CacheHitWarning))),
            low ? $"ALTER SYSTEM SET shared_buffers = '{doubled}MB';  -- then restart; keep it near 25% of RAM. Check the slow-query and seq-scan findings first: a missing index reads more than any cache holds." : null)];
    }
}
