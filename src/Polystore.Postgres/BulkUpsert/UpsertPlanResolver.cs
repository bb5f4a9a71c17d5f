using Npgsql;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Checks a bulk upsert's table, columns, types and conflict target against the catalog (read once and kept in
/// <see cref="UpsertTableCache"/>) and builds its <see cref="PostgresBulkUpsertPlan{T}"/>; throws
/// <see cref="PostgresSchemaException"/> before any row is sent.
/// </summary>
internal static class UpsertPlanResolver
{
    /// <summary>A plan whose catalog facts are known to be current: a cached entry is checked first (one round trip), else the catalog is read.</summary>
    public static Task<PostgresBulkUpsertPlan<T>> ResolveAsync<T>(PostgresBulkUpsertDefinition<T> definition, NpgsqlConnection connection, NpgsqlTransaction? transaction,
        CancellationToken cancellationToken) => ResolveAsync(definition, connection, transaction, checkLater: false, cancellationToken);

    /// <summary>
    /// With <paramref name="checkLater"/>, a cached entry is used as it is and the plan says so
    /// (<see cref="PostgresBulkUpsertPlan{T}.CheckFirst"/>): its first batch must carry the check and the caller retry
    /// with <see cref="ReloadAsync"/> when that check fails.
    /// </summary>
    public static async Task<PostgresBulkUpsertPlan<T>> ResolveAsync<T>(PostgresBulkUpsertDefinition<T> definition, NpgsqlConnection connection, NpgsqlTransaction? transaction,
        bool checkLater, CancellationToken cancellationToken)
    {
        var key = UpsertTableCache.KeyOf(connection, definition.TableName);
        if (UpsertTableCache.TryGet(key, out var cached))
        {
            if (checkLater)
            {
                // A cached entry that misses a column added since would fail here: only a fresh read may refuse.
                try { return Build(definition, cached, connection, checkFirst: true); }
                catch (PostgresSchemaException) { return await ReloadAsync(definition, connection, transaction, cancellationToken).ConfigureAwait(false); }
            }
            if (await UpsertTableCache.StillMatchesAsync(connection, transaction, cached, cancellationToken).ConfigureAwait(false))
                return Build(definition, cached, connection, checkFirst: false);
        }
        return await ReloadAsync(definition, connection, transaction, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the catalog afresh (one round trip) and builds the plan.</summary>
    public static async Task<PostgresBulkUpsertPlan<T>> ReloadAsync<T>(PostgresBulkUpsertDefinition<T> definition, NpgsqlConnection connection, NpgsqlTransaction? transaction,
        CancellationToken cancellationToken)
    {
        var key = UpsertTableCache.KeyOf(connection, definition.TableName);
        var info = await UpsertTableCache.LoadAsync(connection, transaction, key, definition.TableName, cancellationToken).ConfigureAwait(false);
        return Build(definition, info, connection, checkFirst: false);
    }

    private static PostgresBulkUpsertPlan<T> Build<T>(PostgresBulkUpsertDefinition<T> definition, UpsertTableInfo info, NpgsqlConnection connection, bool checkFirst)
    {
        var table = info.Table;
        var columns = new List<(UpsertColumn<T>, ColumnSchema)>();
        foreach (var map in definition.Columns)
        {
            var column = table.Column(map.Name, "bulk upsert column");
            if (column.Name == PostgresBulkUpsertPlan<T>.OrdinalColumn) throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: column name \"{column.Name}\" is reserved for the staging table.");
            if (column.Generated) throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: column \"{column.Name}\" is generated and cannot be written.");
            if (column.IdentityAlways) throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: column \"{column.Name}\" is GENERATED ALWAYS AS IDENTITY and cannot be written.");
            if (TypeCompatibility.Check(map.ValueType, column) is { } problem)
                throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: column \"{column.Name}\": {problem}.");
            columns.Add((map, column));
        }
        var conflict = definition.ConflictColumns.Select(c => table.Column(c, "conflict column")).ToList();
        if (!table.HasUniqueIndexOn(conflict))
            throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: no unique index or primary key on exactly ({string.Join(", ", conflict.Select(c => c.Name))}); ON CONFLICT needs one. Create it, e.g. CREATE UNIQUE INDEX ON {table.QualifiedName} ({string.Join(", ", conflict.Select(c => PostgresIdentifier.Quote(c.Name)))}).");
        if (info.Partitioned && !info.Countable)
            throw new PostgresSchemaException($"bulk upsert into {table.DisplayName}: a partitioned table with triggers or rules (on it or a partition) is not supported: its inserted and updated rows cannot be counted apart (PostgreSQL refuses RETURNING xmax on a partitioned table, and the triggers make its counters unsafe).");
        var update = definition.UpdateColumns.Select(c => table.Column(c, "update column")).ToList();
        var set = definition.SetExpressions.Select(s => (s, table.Column(s.Column, "SET expression column"))).ToList();
        return new PostgresBulkUpsertPlan<T>(table, columns, conflict, update, set, info.Countable, mergeAvailable: connection.PostgreSqlVersion.Major >= 15)
        {
            Info = info,
            CheckFirst = checkFirst,
        };
    }
}
