using NpgsqlTypes;
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
        CopyDbTypes = columns.Select(c => WellKnown.TryGetValue(c.Column.WriteTypeName, out var t) ? t : (NpgsqlDbType?)null).ToArray();
        HasArrayColumn = columns.Any(c => c.Column.WriteTypeName.EndsWith("[]", StringComparison.Ordinal));
        KeyColumns = columns.Where(c => conflict.Any(k => k.Name == c.Column.Name))
            .Select(c => ProvableKey(c.Map.ValueType, c.Column) ? c.Map : new UnprovenKeyColumn<T>(c.Map)).ToArray();
        var quoted = columns.Select(c => PostgresIdentifier.Quote(c.Column.Name)).ToList();
        var cols = string.Join(", ", quoted);
        var keys = string.Join(", ", conflict.Select(c => PostgresIdentifier.Quote(c.Name)));
        var assignments = update.Select(c => $"{PostgresIdentifier.Quote(c.Name)} = EXCLUDED.{PostgresIdentifier.Quote(c.Name)}")
            .Concat(set.Select(s => s.Expression.Render(s.Column))).ToList();
        DoNothing = assignments.Count == 0;
        var action = DoNothing ? "DO NOTHING" : "DO UPDATE SET " + string.Join(", ", assignments);
        var staging = PostgresIdentifier.Quote($"polystore_upsert_{Interlocked.Increment(ref _stagingCounter)}");
        CreateStaging = $"CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT 0::int8 AS {OrdinalColumn}, {cols} FROM {table.QualifiedName} WITH NO DATA";
        TruncateStaging = $"TRUNCATE {staging}";
        Copy = $"COPY {staging} ({OrdinalColumn}, {cols}) FROM STDIN (FORMAT BINARY)";
        CopyWithoutOrdinal = $"COPY {staging} ({cols}) FROM STDIN (FORMAT BINARY)";

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

        UpsertFromStaging = For($"{staging} s");
        UpsertFromStagingDeduplicated = For(LastWins(staging));
        // The oid comes from the catalog (a number), so it is inlined rather than bound.
        // A partitioned table keeps its counters on its partitions (pg_partition_tree is empty for a plain table).
        TransactionCounters = "SELECT coalesce(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_inserted(p.relid) - pg_catalog.pg_stat_get_xact_tuples_deleted(p.relid)), 0)::int8, " +
            "coalesce(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_updated(p.relid)), 0)::int8 " +
            $"FROM (SELECT {table.Oid}::oid AS relid UNION ALL SELECT t.relid FROM pg_catalog.pg_partition_tree({table.Oid}::oid) t WHERE t.isleaf) p";
        SteerMerge = MergeJoinSteering.For(table.Oid);
        TableShapeNow = MergeJoinSteering.TableShapeOf(table.Oid);
        KeyNames = conflict.Select(c => c.Name).ToArray();
        HasDuplicates = $"SELECT EXISTS (SELECT 1 FROM {staging} GROUP BY {keys} HAVING count(*) > 1)";
        var parameters = string.Join(", ", columns.Select((_, i) => $"${i + 1}"));
        UpsertFromArrays = For($"unnest({parameters}) AS s({cols})");
        UpsertFromArraysDeduplicated = For(LastWins($"unnest({parameters}) WITH ORDINALITY AS a({cols}, {OrdinalColumn})"));
    }

    /// <summary>
    /// Whether two values of this key column are equal in PostgreSQL exactly when they are equal in .NET, so a batch
    /// can be proven free of duplicate keys in process. Not so for a timestamp (PostgreSQL keeps microseconds, .NET
    /// ticks), numeric (rounded to the column's scale), char(n) (padding), citext or a nondeterministic collation
    /// (case- or accent-blind): such keys are never proven unique here, and the server removes duplicates.
    /// </summary>
    internal static bool ProvableKey(Type clrType, ColumnSchema column)
    {
        var type = Nullable.GetUnderlyingType(clrType) ?? clrType;
        return column.WriteTypeName switch
        {
            "int2" or "int4" or "int8" => type == typeof(short) || type == typeof(int) || type == typeof(long) || type == typeof(byte) || type == typeof(sbyte) || type == typeof(ushort) || type == typeof(uint),
            "text" or "varchar" => type == typeof(string) && column.DeterministicCollation,
            "uuid" => type == typeof(Guid),
            "bool" => type == typeof(bool),
            "date" => type == typeof(DateOnly),
            _ => false,
        };
    }

    // Built-in types written by NpgsqlDbType in COPY: measured faster per value than resolving the type by its name.
    private static readonly Dictionary<string, NpgsqlDbType> WellKnown = new(StringComparer.Ordinal)
    {
        ["text"] = NpgsqlDbType.Text, ["varchar"] = NpgsqlDbType.Varchar, ["int2"] = NpgsqlDbType.Smallint, ["int4"] = NpgsqlDbType.Integer,
        ["int8"] = NpgsqlDbType.Bigint, ["bool"] = NpgsqlDbType.Boolean, ["float4"] = NpgsqlDbType.Real, ["float8"] = NpgsqlDbType.Double,
        ["numeric"] = NpgsqlDbType.Numeric, ["uuid"] = NpgsqlDbType.Uuid, ["timestamptz"] = NpgsqlDbType.TimestampTz,
        ["timestamp"] = NpgsqlDbType.Timestamp, ["date"] = NpgsqlDbType.Date, ["bytea"] = NpgsqlDbType.Bytea, ["jsonb"] = NpgsqlDbType.Jsonb,
    };

    public TableSchema Table { get; }

    /// <summary>Per mapped column, its type as <see cref="NpgsqlDbType"/> for COPY where it is a common built-in one, else null (written by name).</summary>
    public NpgsqlDbType?[] CopyDbTypes { get; }

    /// <summary>The catalog facts the plan was built from.</summary>
    public required UpsertTableInfo Info { get; init; }

    /// <summary>
    /// True when those facts come from the cache unchecked: the first batch of the call must carry
    /// <see cref="UpsertTableCache.CheckCommand"/>, and a failure of it means the plan is stale (see <see cref="UpsertFirstTrip"/>).
    /// </summary>
    public bool CheckFirst { get; init; }
    public IReadOnlyList<(UpsertColumn<T> Map, ColumnSchema Column)> Columns { get; }
    public UpsertColumn<T>[] KeyColumns { get; }

    /// <summary>True when a mapped column is an array: such batches are always staged with COPY (unnest would flatten them).</summary>
    public bool HasArrayColumn { get; }

    /// <summary>True when a key column cannot be proven duplicate-free in process (see <see cref="ProvableKey"/>): such batches are always staged.</summary>
    public bool HasUnprovenKey => KeyColumns.Any(k => k is UnprovenKeyColumn<T>);
    public bool DoNothing { get; }
    public string CreateStaging { get; }
    public string Copy { get; }
    public string TruncateStaging { get; }
    public string CopyWithoutOrdinal { get; }
    public UpsertSql UpsertFromStaging { get; }
    public UpsertSql UpsertFromStagingDeduplicated { get; }
    public string HasDuplicates { get; }
    public UpsertSql UpsertFromArrays { get; }
    public UpsertSql UpsertFromArraysDeduplicated { get; }

    /// <summary>
    /// True when the inserted and updated counts can be read from this backend's transaction-local table
    /// counters around the statement (a plain table, track_counts on, no rules, no triggers that could write
    /// the table) instead of <c>RETURNING</c>, which measured 10-15% of the statement's time on 100k rows.
    /// </summary>
    public bool CountFromStats { get; }

    /// <summary>This backend's uncommitted insert (net of aborted speculative inserts) and update counters for the table.</summary>
    public string TransactionCounters { get; }

    /// <summary>Sets (transaction-local) how a staged batch's MERGE joins the table: see <see cref="MergeJoinSteering"/>.</summary>
    public string SteerMerge { get; }

    /// <summary>The table's estimated rows now and its key's correlation and width: see <see cref="MergeJoinSteering.TableShapeOf"/>.</summary>
    public string TableShapeNow { get; }

    /// <summary>The conflict columns' catalog names (the parameters of <see cref="TableShapeNow"/>).</summary>
    public string[] KeyNames { get; }
}

