using Polystore.Postgres.Schema;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>Entry point: <c>PostgresBulkUpsert.Into&lt;User&gt;("users").Column(...).OnConflict("email").Build()</c>.</summary>
public static class PostgresBulkUpsert
{
    /// <summary>Starts describing an upsert into <paramref name="table"/> ("table" on the search_path, or "schema.table").</summary>
    public static PostgresBulkUpsertBuilder<T> Into<T>(string table)
    {
        return new PostgresBulkUpsertBuilder<T>(TableSchema.CheckName(table, nameof(table)));
    }
}
