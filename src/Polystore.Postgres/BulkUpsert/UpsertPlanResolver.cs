using Npgsql;
using NpgsqlTypes;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Checks a bulk upsert's table, columns, types and conflict target against the catalog and builds its
/// <see cref="PostgresBulkUpsertPlan{T}"/>; throws <see cref="PostgresSchemaException"/> before any row is sent.
/// </summary>
internal static class UpsertPlanResolver
{
    public static async Task<PostgresBulkUpsertPlan<T>> ResolveAsync<T>(PostgresBulkUpsertDefinition<T> definition, NpgsqlConnection connection, NpgsqlTransaction? transaction,
        CancellationToken cancellationToken)
    {
        var table = await TableSchema.LoadAsync(connection, definition.TableName, transaction, cancellationToken).ConfigureAwait(false);
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
        var update = definition.UpdateColumns.Select(c => table.Column(c, "update column")).ToList();
        var set = definition.SetExpressions.Select(s => (s, table.Column(s.Column, "SET expression column"))).ToList();
        // A trigger (other than a foreign key's own checks on another table) or a rule could write the table
        // too, and a partitioned table keeps its counters per partition: those count with RETURNING instead.
        var countable = await Sql.QueryAsync(connection, transaction, """
            SELECT c.relkind = 'r' AND NOT c.relhasrules AND pg_catalog.current_setting('track_counts')::bool
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid AND (NOT g.tgisinternal OR g.tgconstrrelid = c.oid))
            FROM pg_catalog.pg_class c WHERE c.oid = $1
            """, [new NpgsqlParameter<uint> { TypedValue = table.Oid, NpgsqlDbType = NpgsqlDbType.Oid }], r => r.GetBoolean(0), cancellationToken).ConfigureAwait(false);
        return new PostgresBulkUpsertPlan<T>(table, columns, conflict, update, set, countable is [true], mergeAvailable: connection.PostgreSqlVersion.Major >= 15);
    }
}
