using System.Collections.Concurrent;
using Npgsql;
using NpgsqlTypes;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>What a bulk upsert reads from the catalog about its table, with the fingerprint it was read under.</summary>
internal sealed record UpsertTableInfo(string Key, TableSchema Table, bool Countable, string Fingerprint, string? Schema, string Name)
{
    /// <summary>A partitioned table: its counts come from its partitions' counters, never from RETURNING xmax (refused there).</summary>
    public bool Partitioned { get; init; }
}

/// <summary>
/// The catalog facts a bulk upsert needs (table, columns, types, unique indexes, whether counts can come from the
/// table counters), read in one round trip and kept per server, database, role and table name. A cached entry is
/// never trusted blindly: every call sends a check with its first statements that resolves the name again on that
/// connection (its search_path) and compares a fingerprint of those facts, and fails that statement when anything
/// differs, before any row is written; the caller then forgets the entry, reads the catalog again and retries.
/// Only failing on errors would not do: a column changed to a type of the same binary width (int to real,
/// timestamp to timestamptz) takes binary COPY data silently, and a table dropped and created again, or a new
/// trigger, would only make the counts wrong.
/// </summary>
internal static class UpsertTableCache
{
    // Bounded: past this many tables the whole cache is dropped (a re-read costs one round trip per table).
    private const int MaxEntries = 1024;
    private static readonly ConcurrentDictionary<string, UpsertTableInfo> Entries = new(StringComparer.Ordinal);

    // SQLSTATEs that say a statement met a table other than the one the plan was built for.
    private static readonly HashSet<string> SchemaChanged =
    [
        PostgresErrorCodes.UndefinedColumn, PostgresErrorCodes.UndefinedTable, PostgresErrorCodes.DatatypeMismatch,
        PostgresErrorCodes.FeatureNotSupported, PostgresErrorCodes.InvalidBinaryRepresentation, PostgresErrorCodes.InvalidColumnReference,
        PostgresErrorCodes.WrongObjectType, PostgresErrorCodes.CannotCoerce,
    ];

    // The table as the name resolves on this connection ($1 name, $2 schema or null), as TableSchema finds it.
    private const string ResolvedOid = $"(SELECT c.oid {TableSchema.ResolveName})";

    // Everything below is read from these catalog rows: any change to them changes the fingerprint.
    private const string Fingerprint = """
        pg_catalog.md5(pg_catalog.concat_ws('|', c.oid, c.relkind, c.relhasrules, pg_catalog.current_setting('track_counts'),
          (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(',', a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull, a.attgenerated, a.attidentity), ';' ORDER BY a.attnum)
             FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
          (SELECT pg_catalog.string_agg(i.indexrelid::text || ':' || i.indkey::text || ':' || i.indisvalid, ';' ORDER BY i.indexrelid)
             FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisunique),
          (SELECT pg_catalog.string_agg(g.oid::text || ':' || g.tgisinternal || ':' || g.tgconstrrelid, ';' ORDER BY g.oid)
             FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid),
          (SELECT pg_catalog.string_agg(p.relid::text || ':' || pc.relhasrules || ':' || coalesce(
               (SELECT pg_catalog.string_agg(g.oid::text || ':' || g.tgisinternal || ':' || g.tgconstrrelid, ',' ORDER BY g.oid) FROM pg_catalog.pg_trigger g WHERE g.tgrelid = p.relid), ''), ';' ORDER BY p.relid)
             FROM pg_catalog.pg_partition_tree(c.oid) p JOIN pg_catalog.pg_class pc ON pc.oid = p.relid)))
        """;

    private const string FindTable = $"SELECT c.oid, n.nspname, c.relname, {Fingerprint} {TableSchema.ResolveName}";

    private static readonly string FindColumns = TableSchema.ColumnsOf(ResolvedOid);

    private static readonly string FindUnique = TableSchema.UniqueIndexesOf(ResolvedOid);

    // A trigger (other than a foreign key's own checks on another table) or a rule could write the table
    // too: those count with RETURNING instead. A partitioned table counts as the sum of its partitions' counters
    // (PostgreSQL refuses RETURNING xmax there), so its partitions are held to the same rules.
    private const string Tree = "SELECT c.oid UNION ALL SELECT t.relid FROM pg_catalog.pg_partition_tree(c.oid) t";
    private const string FindCountable = $"""
        SELECT c.relkind IN ('r', 'p') AND pg_catalog.current_setting('track_counts')::bool
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class r WHERE r.oid IN ({Tree}) AND r.relhasrules)
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid IN ({Tree}) AND (NOT g.tgisinternal OR g.tgconstrrelid IN ({Tree})))
          , c.relkind = 'p'
        FROM pg_catalog.pg_class c WHERE c.oid = {ResolvedOid}
        """;

    // Null when the name resolves to nothing; false when it resolves to a table with another fingerprint.
    private const string Matches = $"COALESCE((SELECT {Fingerprint} {TableSchema.ResolveName}) = $3, false)";

    /// <summary>True when the entry still describes the table (one row, one column); leaves the transaction usable either way.</summary>
    private const string CheckQuietly = $"SELECT {Matches}";

    /// <summary>Fails (division by zero) when the entry no longer describes the table; meant to ride in a batch that must not go on then.</summary>
    private const string CheckOrFail = $"SELECT 1 / ({Matches})::int";

    public static string KeyOf(NpgsqlConnection connection, string table) =>
        $"{connection.Host}\n{connection.Port}\n{connection.Database}\n{connection.UserName}\n{table}";

    public static bool TryGet(string key, out UpsertTableInfo info) => Entries.TryGetValue(key, out info!);

    public static void Forget(string key) => Entries.TryRemove(key, out _);

    /// <summary>True when the error says a statement met a table other than the one its plan was built for.</summary>
    public static bool IsSchemaError(PostgresException e) => SchemaChanged.Contains(e.SqlState);

    /// <summary>
    /// Forgets the entry when <paramref name="e"/> (or its cause) says a statement met a changed table, or Npgsql refused
    /// to write a value for a column type the entry names (the column may have been retyped since: the next call reads
    /// the catalog again instead of failing the same way until the process restarts).
    /// </summary>
    public static void ForgetOnSchemaError(string key, Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is PostgresException p && SchemaChanged.Contains(p.SqlState)) Forget(key);
            else if (x is InvalidCastException or NotSupportedException or ArgumentException) Forget(key);
        }
    }

    /// <summary>Reads the catalog in one round trip and caches the result.</summary>
    public static async Task<UpsertTableInfo> LoadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string key, string tableName, CancellationToken cancellationToken)
    {
        var (schema, name) = TableSchema.ParseName(TableSchema.CheckName(tableName, "table"));
        var batch = new NpgsqlBatch(connection, transaction);
        await using (batch.ConfigureAwait(false))
        {
            foreach (var sql in new[] { FindTable, FindColumns, FindUnique, FindCountable })
                batch.BatchCommands.Add(new NpgsqlBatchCommand(sql) { Parameters = { NameParameter(name), SchemaParameter(schema) } });
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                (uint Oid, string Schema, string Name, string Fingerprint)? found = null;
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    found = (reader.GetFieldValue<uint>(0), reader.GetString(1), reader.GetString(2), reader.GetString(3));
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                var columns = new List<ColumnSchema>();
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    columns.Add(TableSchema.ReadColumn(reader));
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                var unique = new List<short[]>();
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) unique.Add(reader.GetFieldValue<short[]>(0));
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                var hasKind = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                var countable = hasKind && reader.GetBoolean(0);
                var partitioned = hasKind && reader.GetBoolean(1);
                if (found is not { } f)
                {
                    Forget(key);
                    throw TableSchema.NotFound(tableName, schema);
                }
                var info = new UpsertTableInfo(key, new TableSchema(f.Schema, f.Name, f.Oid, columns, unique), countable, f.Fingerprint, schema, name) { Partitioned = partitioned };
                if (Entries.Count >= MaxEntries) Entries.Clear();
                Entries[key] = info;
                return info;
            }
        }
    }

    /// <summary>Asks, in a round trip of its own, whether the entry still describes the table (the transaction stays usable).</summary>
    public static async Task<bool> StillMatchesAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, UpsertTableInfo info, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(CheckQuietly, connection, transaction) { Parameters = { NameParameter(info.Name), SchemaParameter(info.Schema), FingerprintParameter(info.Fingerprint) } };
        await using (command.ConfigureAwait(false))
            return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>The check that fails its batch when the entry no longer describes the table.</summary>
    public static NpgsqlBatchCommand CheckCommand(UpsertTableInfo info) =>
        new(CheckOrFail) { Parameters = { NameParameter(info.Name), SchemaParameter(info.Schema), FingerprintParameter(info.Fingerprint) } };

    private static NpgsqlParameter<string> NameParameter(string name) => new() { TypedValue = name, NpgsqlDbType = NpgsqlDbType.Text };

    private static NpgsqlParameter SchemaParameter(string? schema) => new() { Value = (object?)schema ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private static NpgsqlParameter<string> FingerprintParameter(string fingerprint) => new() { TypedValue = fingerprint, NpgsqlDbType = NpgsqlDbType.Text };
}
