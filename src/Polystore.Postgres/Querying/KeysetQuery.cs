using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Querying;

/// <summary>
/// Starts a keyset (seek) query: <c>KeysetQuery.From("users").OrderBy("score", SortDirection.Descending).ThenBy("id").Build()</c>.
/// </summary>
public static class KeysetQuery
{
    /// <summary>Pages over <paramref name="table"/> ("table" on the search_path, or "schema.table").</summary>
    public static KeysetQueryBuilder From(string table)
    {
        return new KeysetQueryBuilder(TableSchema.CheckName(table, nameof(table)));
    }
}
