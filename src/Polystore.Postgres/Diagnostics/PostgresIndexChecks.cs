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
        // A partitioned index is judged as a whole (scans and size summed over its partitions' indexes), and the
        // indexes of partitions are not reported on their own: they cannot be dropped while their parent exists.
        var rows = await ctx.QueryAsync($"""
            SELECT n.nspname, t.relname, ci.relname, tree.size, tree.scans,
                   (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
                   pg_postmaster_start_time(), ci.relkind = 'I'
            FROM pg_index i
            JOIN pg_class ci ON ci.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            CROSS JOIN LATERAL (
                SELECT coalesce(sum(pg_relation_size(p.relid)), 0)::bigint AS size, coalesce(sum(s.idx_scan), 0)::bigint AS scans, count(s.indexrelid) AS counted
                FROM (SELECT relid FROM pg_partition_tree(i.indexrelid) UNION SELECT i.indexrelid) p -- the tree is empty for a plain index
                LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = p.relid) tree
            WHERE NOT ci.relispartition AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
              AND tree.counted > 0 AND tree.scans = 0
              AND {UserSchemas}
            ORDER BY 4 DESC, 1, 3 LIMIT $2
            """, r => (Schema: r.GetString(0), Table: r.GetString(1), Index: r.GetString(2), Size: r.Long(3), Scans: r.Long(4), Reset: r.Time(5), Start: r.Time(6), Partitioned: r.GetBoolean(7)),
            ct, ctx.SchemaParameter(), ctx.Limit).ConfigureAwait(false);
        return rows.Select(x => ctx.Finding("postgres.unused_indexes",
            x.Size >= ctx.Options.UnusedIndexWarningBytes ? Severity.Warning : Severity.Info,
            $"Index {x.Schema}.{x.Index} on {x.Table} has never been scanned ({Bytes(x.Size)} written on every insert and update)",
            Evidence(("schema", x.Schema), ("table", x.Table), ("index", x.Index), ("idx_scan", x.Scans), ("size_bytes", x.Size), ("size", Bytes(x.Size)),
                ("counting_since", x.Reset ?? x.Start)),
            $"{Drop(x.Schema, x.Index, x.Partitioned)};  -- first check replicas too: idx_scan is counted per server")).ToList();
    }

    // DROP INDEX CONCURRENTLY cannot drop a partitioned index: a plain DROP does, with its partitions' indexes, under a
    // lock on the table held for the moment it takes.
    private static string Drop(string schema, string index, bool partitioned) => partitioned
        ? $"DROP INDEX {PostgresIdentifier.Qualified(schema, index)}"
        : $"DROP INDEX CONCURRENTLY {PostgresIdentifier.Qualified(schema, index)}";

    public static async Task<IReadOnlyList<Finding>> DuplicateAsync(PostgresContext ctx, CancellationToken ct)
    {
        // Same table, columns, operator classes, collations, options, expressions and predicate = the same index.
        // The one to keep sorts first: primary key, then unique, then constraint-backed, then by name.
        // Only the constraints an index enforces (primary key, unique, exclusion) are its own: a foreign key names the
        // index it references in conindid too. NULLS NOT DISTINCT (PostgreSQL 15, read through to_jsonb so older
        // servers answer null) and deferrability change what a unique index allows. Partitions' indexes go with
        // their parent's and are left out.
        var rows = await ctx.QueryAsync($"""
            SELECT n.nspname, t.relname,
                   array_agg(ci.relname ORDER BY i.indisprimary DESC, i.indisunique DESC, (c.oid IS NOT NULL) DESC, ci.relname),
                   array_agg(c.conname ORDER BY i.indisprimary DESC, i.indisunique DESC, (c.oid IS NOT NULL) DESC, ci.relname),
                   sum((SELECT coalesce(sum(pg_relation_size(p.relid)), 0) FROM (SELECT relid FROM pg_partition_tree(i.indexrelid) UNION SELECT i.indexrelid) p))::bigint,
                   pg_get_indexdef(min(i.indexrelid)), t.relkind = 'p'
            FROM pg_index i
            JOIN pg_class ci ON ci.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x')
            WHERE i.indisvalid AND NOT ci.relispartition AND {UserSchemas}
            GROUP BY n.nspname, t.relname, t.relkind, i.indrelid, i.indkey::text, i.indclass::text, i.indcollation::text, i.indoption::text,
                     coalesce(pg_get_expr(i.indexprs, i.indrelid), ''), coalesce(pg_get_expr(i.indpred, i.indrelid), ''),
                     i.indisunique, i.indimmediate, to_jsonb(i) ->> 'indnullsnotdistinct'
            HAVING count(*) > 1
            ORDER BY 5 DESC LIMIT $2
            """, r => (Schema: r.GetString(0), Table: r.GetString(1), Indexes: r.GetFieldValue<string[]>(2), Constraints: r.GetFieldValue<string?[]>(3), Size: r.Long(4), Def: r.Str(5), Partitioned: r.GetBoolean(6)),
            ct, ctx.SchemaParameter(), ctx.Limit).ConfigureAwait(false);
        return rows.Select(d =>
        {
            var drops = d.Indexes.Skip(1).Select((name, k) => d.Constraints[k + 1] is { } constraint
                ? $"ALTER TABLE {PostgresIdentifier.Qualified(d.Schema, d.Table)} DROP CONSTRAINT {PostgresIdentifier.Quote(constraint)};"
                : $"{Drop(d.Schema, name, d.Partitioned)};");
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
            SELECT n.nspname, t.relname, ci.relname, pg_relation_size(i.indexrelid), pg_get_indexdef(i.indexrelid), ci.relkind = 'I'
            FROM pg_index i
            JOIN pg_class ci ON ci.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE NOT i.indisvalid AND {UserSchemas}
            ORDER BY 1, 3 LIMIT $2
            """, r => (Schema: r.GetString(0), Table: r.GetString(1), Index: r.GetString(2), Size: r.Long(3), Def: r.Str(4), Partitioned: r.GetBoolean(5)),
            ct, ctx.SchemaParameter(), ctx.Limit).ConfigureAwait(false);
        return rows.Select(x =>
        {
            var name = PostgresIdentifier.Qualified(x.Schema, x.Index);
            // A partitioned index is invalid until every partition has an index attached to it (CREATE INDEX ... ON ONLY
            // makes one that starts so); REINDEX does not change that. Made again without ONLY, it covers every partition.
            return x.Partitioned
                ? ctx.Finding("postgres.invalid_indexes", Severity.Warning,
                    $"Partitioned index {x.Schema}.{x.Index} on {x.Table} is invalid: some partitions have no index attached to it",
                    Evidence(("schema", x.Schema), ("table", x.Table), ("index", x.Index), ("definition", x.Def)),
                    $"DROP INDEX {name}; {x.Def?.Replace(" ON ONLY ", " ON ", StringComparison.Ordinal)};  -- or, without locking the table: CREATE INDEX CONCURRENTLY on each partition lacking one, then ALTER INDEX {name} ATTACH PARTITION <that index>;")
                : ctx.Finding("postgres.invalid_indexes", Severity.Warning,
                    $"Index {x.Schema}.{x.Index} on {x.Table} is invalid (a failed CREATE INDEX CONCURRENTLY): never used by queries, still maintained on writes",
                    Evidence(("schema", x.Schema), ("table", x.Table), ("index", x.Index), ("size", Bytes(x.Size)), ("definition", x.Def)),
                    $"REINDEX INDEX CONCURRENTLY {name};  -- or, if it is not wanted: DROP INDEX CONCURRENTLY {name};");
        }).ToList();
    }
}
