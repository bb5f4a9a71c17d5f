using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>The SQL for one upsert, built only from catalog names (quoted) after every check passed.</summary>
internal sealed class PostgresBulkUpsertPlan<T>
{
    public const string OrdinalColumn = "polystore_ordinal";
    private static long _stagingCounter;

    public PostgresBulkUpsertPlan(TableSchema table, IReadOnlyList<(UpsertColumn<T> Map, ColumnSchema Column)> columns,
        IReadOnlyList<ColumnSchema> conflict, IReadOnlyList<ColumnSchema> update, IReadOnlyList<(SetExpression Expression, ColumnSchema Column)> set,
        bool countFromStats, bool mergeAvailable)
    {
        Table = table;
        CountFromStats = countFromStats;
        Columns = columns;
        KeyColumns = columns.Where(c => conflict.Any(k => k.Name == c.Column.Name)).Select(c => c.Map).ToArray();
        var quoted = columns.Select(c => PostgresIdentifier.Quote(c.Column.Name)).ToList();
        var cols = string.Join(", ", quoted);
        var keys = string.Join(", ", conflict.Select(c => PostgresIdentifier.Quote(c.Name)));
        var assignments = update.Select(c => $"{PostgresIdentifier.Quote(c.Name)} = EXCLUDED.{PostgresIdentifier.Quote(c.Name)}")
            .Concat(set.Select(s => s.Expression.Render(s.Column))).ToList();
        DoNothing = assignments.Count == 0;
        var action = DoNothing ? "DO NOTHING" : "DO UPDATE SET " + string.Join(", ", assignments);
        Staging = PostgresIdentifier.Quote($"polystore_upsert_{Interlocked.Increment(ref _stagingCounter)}");
        CreateStaging = $"CREATE TEMP TABLE {Staging} ON COMMIT DROP AS SELECT 0::int8 AS {OrdinalColumn}, {cols} FROM {table.QualifiedName} WITH NO DATA";
        Copy = $"COPY {Staging} ({OrdinalColumn}, {cols}) FROM STDIN (FORMAT BINARY)";
        CopyWithoutOrdinal = $"COPY {Staging} ({cols}) FROM STDIN (FORMAT BINARY)";

        // MERGE joins the batch to the table and then inserts plainly, where ON CONFLICT pays a speculative
        // insertion per row: measured ~40% faster on the insert path. It only runs where counts come from the
        // table counters (MERGE has no RETURNING before PostgreSQL 17, and no rules) and every SET expression
        // can be written without EXCLUDED; a concurrent insert of the same key makes it fail, and the caller
        // then rolls back to a savepoint and runs the ON CONFLICT statement, so the outcome is the same.
        var mergeable = mergeAvailable && countFromStats && set.All(s => s.Expression.MergeCompatible);
        var match = string.Join(" AND ", conflict.Select(c => $"t.{PostgresIdentifier.Quote(c.Name)} = s.{PostgresIdentifier.Quote(c.Name)}"));
        var mergeUpdate = update.Select(c => $"{PostgresIdentifier.Quote(c.Name)} = s.{PostgresIdentifier.Quote(c.Name)}")
            .Concat(set.Select(s => s.Expression.Render(s.Column))).ToList();
        var mergeInsert = $"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({string.Join(", ", quoted.Select(c => "s." + c))})";
        var mergeAction = DoNothing ? mergeInsert : $"WHEN MATCHED THEN UPDATE SET {string.Join(", ", mergeUpdate)} {mergeInsert}";

        // source: a FROM item aliased s whose columns are cols
        UpsertSql For(string source) => new(
            $"WITH u AS (INSERT INTO {table.QualifiedName} AS t ({cols}) SELECT {cols} FROM {source} ON CONFLICT ({keys}) {action} RETURNING (t.xmax = 0) AS inserted) " +
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM u",
            $"INSERT INTO {table.QualifiedName} AS t ({cols}) SELECT {cols} FROM {source} ON CONFLICT ({keys}) {action}",
            mergeable ? $"MERGE INTO {table.QualifiedName} AS t USING {source} ON {match} {mergeAction}" : null);
        string LastWins(string from) => $"(SELECT DISTINCT ON ({keys}) {cols} FROM {from} ORDER BY {keys}, {OrdinalColumn} DESC) s";

        UpsertFromStaging = For($"{Staging} s");
        UpsertFromStagingDeduplicated = For(LastWins(Staging));
        // The oid comes from the catalog (a number), so it is inlined rather than bound.
        TransactionCounters = $"SELECT pg_catalog.pg_stat_get_xact_tuples_inserted({table.Oid}::oid) - pg_catalog.pg_stat_get_xact_tuples_deleted({table.Oid}::oid), " +
            $"pg_catalog.pg_stat_get_xact_tuples_updated({table.Oid}::oid)";
        // Steers the MERGE of a staged batch ($1 = rows staged, $2 = hash memory cap in bytes, $3 = the conflict
        // columns' names). Measured updating rows of a 1M-row table: the whole table in one batch took 13-14 s with a
        // one-pass hash join of the table, 16-17 s with index probes, 18 s with the hash spilled into batches (which
        // also hands the rows over in hash order, so pages are visited at random); a 125k-row batch took 2.2 s with
        // probes, 2.7 s with a one-pass hash (scanning and hashing the whole table is a fixed cost), 3.0 s spilled,
        // and the planner chose the spilled hash. So: a batch of at least a quarter of the table whose hash fits
        // under the cap gets the work_mem for one pass (never lowered); any other gets index probes (hash and merge
        // joins off; the conflict columns always have a unique index). Parallel chunks too: a 125k-row chunk left to
        // the planner hashed the whole table (spilled) in each of the 8 chunks of a 1M-row update; alone, such a
        // chunk took 1.7-1.8 s with probes against 2.2-2.4 s spilled. A hash entry is about 64 bytes plus the key
        // (67 MB for 1M e-mail keys), keys as wide as pg_stats says, 32 bytes each where it says nothing.
        SteerMerge = "SELECT CASE WHEN x.rows * 4 >= x.reltuples AND x.need <= $2::float8 " +
            "THEN pg_catalog.set_config('work_mem', (GREATEST(pg_catalog.pg_size_bytes(current_setting('work_mem')), " +
            "ceil(x.need / current_setting('hash_mem_multiplier')::float8))::bigint / 1024) || 'kB', true) " +
            "ELSE pg_catalog.set_config('enable_hashjoin', 'off', true) || pg_catalog.set_config('enable_mergejoin', 'off', true) END " +
            "FROM (SELECT $1::float8 AS rows, t.reltuples, GREATEST(t.reltuples, $1::float8) * (64 + COALESCE((SELECT sum(st.avg_width) " +
            "FROM pg_catalog.pg_stats st WHERE st.schemaname = t.nspname AND st.tablename = t.relname AND st.attname = ANY($3::text[])), " +
            "32 * cardinality($3::text[]))) AS need " +
            // The table's rows now, estimated as the planner does: the density at the last VACUUM/ANALYZE times its
            // current size (a table filled since a TRUNCATE still says 0 rows in reltuples); 60 rows a page if never measured.
            "FROM (SELECT n.nspname, c.relname, pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::float8 " +
            "* CASE WHEN c.relpages > 0 AND c.reltuples >= 0 THEN c.reltuples / c.relpages ELSE 60 END AS reltuples " +
            $"FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = {table.Oid}::oid) t) x";
        KeyNames = conflict.Select(c => c.Name).ToArray();
        HasDuplicates = $"SELECT EXISTS (SELECT 1 FROM {Staging} GROUP BY {keys} HAVING count(*) > 1)";
        var parameters = string.Join(", ", columns.Select((_, i) => $"${i + 1}"));
        UpsertFromArrays = For($"unnest({parameters}) AS s({cols})");
        UpsertFromArraysDeduplicated = For(LastWins($"unnest({parameters}) WITH ORDINALITY AS a({cols}, {OrdinalColumn})"));
    }

    public TableSchema Table { get; }
    public IReadOnlyList<(UpsertColumn<T> Map, ColumnSchema Column)> Columns { get; }
    public UpsertColumn<T>[] KeyColumns { get; }
    public bool DoNothing { get; }
    public string Staging { get; }
    public string CreateStaging { get; }
    public string Copy { get; }
    public string CopyWithoutOrdinal { get; }
    public UpsertSql UpsertFromStaging { get; }
    public UpsertSql UpsertFromStagingDeduplicated { get; }
    public string HasDuplicates { get; }
    public UpsertSql UpsertFromArrays { get; }
    public UpsertSql UpsertFromArraysDeduplicated { get; }

    /// <summary>
    /// True when the inserted and updated counts can be read from this backend's transaction-local table
    /// counters around a plain INSERT (a plain table, track_counts on, no rules, no triggers that could write
    /// the table) instead of <c>RETURNING</c>, which measured 10-15% of the statement's time on 100k rows.
    /// </summary>
    public bool CountFromStats { get; }

    /// <summary>This backend's uncommitted insert (net of aborted speculative inserts) and update counters for the table.</summary>
    public string TransactionCounters { get; }

    /// <summary>Sets (transaction-local) how a staged batch's MERGE joins: a one-pass hash or index probes; see where it is built.</summary>
    public string SteerMerge { get; }

    /// <summary>The conflict columns' catalog names (parameter $3 of <see cref="SteerMerge"/>).</summary>
    public string[] KeyNames { get; }
}

/// <summary>
/// One upsert statement in its forms: counted with RETURNING, plain (counted from the table counters), and
/// as MERGE (null where it does not apply).
/// </summary>
internal sealed record UpsertSql(string Returning, string Plain, string? Merge);
