using Polystore.Core.Diagnostics;
using static Polystore.Core.Diagnostics.FindingText;

namespace Polystore.Postgres.Diagnostics;

/// <summary>Unused, duplicate and invalid indexes.</summary>
internal static class PostgresIndexChecks
{
    private const string UserSchemas = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND ($1::text[] IS NULL OR n.nspname = ANY($1))";

    public static async Task<IReadOnlyList<Finding>> UnusedAsync(PostgresContext ctx, CancellationToken ct)
    {
        // Unique and primary-key indexes enforce rules even when no query reads them; constraint-backed ones too.
        var rows = await ctx.QueryAsync($"""
            SELECT n.nspname, t.relname, ci.relname, pg_relation_size(s.indexrelid), s.idx_scan,
                   (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
                   pg_postmaster_start_time()
            FROM pg_stat_user_indexes s
            JOIN pg_index i ON i.indexrelid = s.indexrelid
            JOIN pg_class ci ON ci.oid = s.indexrelid
            JOIN pg_class t ON t.oid = s.relid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
              AND {UserSchemas}
            ORDER BY 4 DESC, 1, 3 LIMIT $2
            """, r => (Schema: r.GetString(0), Table: r.GetString(1), Index: r.GetString(2), Size: r.Long(3), Scans: r.Long(4), Reset: r.Time(5), Start: r.Time(6)),
            ct, ctx.SchemaParameter(), ctx.Limit).ConfigureAwait(false);
        return rows.Select(x => ctx.Finding("postgres.unused_indexes",
            x.Size >= ctx.Options.UnusedIndexWarningBytes ? Severity.Warning : Severity.Info,
            $"Index {x.Schema}.{x.Index} on {x.Table} has never been scanned ({Bytes(x.Size)} written on every insert and update)",
            Evidence(("schema", x.Schema), ("table", x.Table), ("index", x.Index), ("idx_scan", x.Scans), ("size_bytes", x.Size), ("size", Bytes(x.Size)),
                ("counting_since", x.Reset ?? x.Start)),
            $"DROP INDEX CONCURRENTLY {PostgresIdentifier.Qualified(x.Schema, x.Index)};  -- first check replicas too: idx_scan is counted per server")).ToList();
    }

    public static async Task<IReadOnlyList<Finding>> DuplicateAsync(PostgresContext ctx, CancellationToken ct)
    {
        // Same table, columns, operator classes, collations, options, expressions and predicate = the same index.
        // The one to keep sorts first: primary key, then unique, then constraint-backed, then by name.
        var rows = await ctx.QueryAsync($"""
            SELECT n.nspname, t.relname,
                   array_agg(ci.relname ORDER BY i.indisprimary DESC, i.indisunique DESC, (c.oid IS NOT NULL) DESC, ci.relname),
                   array_agg(c.conname ORDER BY i.indisprimary DESC, i.indisunique DESC, (c.oid IS NOT NULL) DESC, ci.relname),
                   sum(pg_relation_size(i.indexrelid))::bigint, pg_get_indexdef(min(i.indexrelid))
            FROM pg_index i
            JOIN pg_class ci ON ci.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
            WHERE i.indisvalid AND {UserSchemas}
            GROUP BY n.nspname, t.relname, i.indrelid, i.indkey::text, i.indclass::text, i.indcollation::text, i.indoption::text,
                     coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), '')
            HAVING count(*) > 1
            ORDER BY 5 DESC LIMIT $2
            """, r => (Schema: r.GetString(0), Table: r.GetString(1), Indexes: r.GetFieldValue<string[]>(2), Constraints: r.GetFieldValue<string?[]>(3), Size: r.Long(4), Def: r.Str(5)),
            ct, ctx.SchemaParameter(), ctx.Limit).ConfigureAwait(false);
        return rows.Select(d =>
        {
            var drops = d.Indexes.Skip(1).Select((name, k) => d.Constraints[k + 1] is { } constraint
                ? $"ALTER TABLE {PostgresIdentifier.Qualified(d.Schema, d.Table)} DROP CONSTRAINT {PostgresIdentifier.Quote(constraint)};"
                : $"DROP INDEX CONCURRENTLY {PostgresIdentifier.Qualified(d.Schema, name)};");
            return ctx.Finding("postgres.duplicate_indexes", Severity.Warning,
                $"Table {d.Schema}.{d.Table} has {d.Indexes.Length} identical indexes: {string.Join(", ", d.Indexes)}",
                Evidence(("schema", d.Schema), ("table", d.Table), ("indexes", string.Join(", ", d.Indexes)), ("keep", d.Indexes[0]),
                    ("total_size", Bytes(d.Size)), ("definition", d.Def)),
                string.Join("\n", drops));
        }).ToList();
    }

    public static async Task<IReadOnlyList<Finding>> InvalidAsync(PostgresContext ctx, CancellationToken ct)
    {
        var rows = await ctx.QueryAsync($"""
            SELECT n.nspname, t.relname, ci.relname, pg_relation_size(i.indexrelid), pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            JOIN pg_class ci ON ci.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE NOT i.indisvalid AND {UserSchemas}
            ORDER BY 1, 3 LIMIT $2
            """, r => (Schema: r.GetString(0), Table: r.GetString(1), Index: r.GetString(2), Size: r.Long(3), Def: r.Str(4)),
            ct, ctx.SchemaParameter(), ctx.Limit).ConfigureAwait(false);
        return rows.Select(x => ctx.Finding("postgres.invalid_indexes", Severity.Warning,
            $"Index {x.Schema}.{x.Index} on {x.Table} is invalid (a failed CREATE INDEX CONCURRENTLY): never used by queries, still maintained on writes",
            Evidence(("schema", x.Schema), ("table", x.Table), ("index", x.Index), ("size", Bytes(x.Size)), ("definition", x.Def)),
            $"REINDEX INDEX CONCURRENTLY {PostgresIdentifier.Qualified(x.Schema, x.Index)};  -- or, if it is not wanted: DROP INDEX CONCURRENTLY {PostgresIdentifier.Qualified(x.Schema, x.Index)};")).ToList();
    }
}
