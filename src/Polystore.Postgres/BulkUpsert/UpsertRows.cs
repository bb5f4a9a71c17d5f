namespace Polystore.Postgres.BulkUpsert;

/// <summary>Checks on the caller's rows as they are read.</summary>
internal static class UpsertRows
{
    /// <summary>The row, or a clear error instead of a NullReferenceException inside a column mapping.</summary>
    public static T NotNull<T>(T row) => row is null
        ? throw new ArgumentException("the row sequence contains a null row; every row must be an object the column mappings can read.", "rows")
        : row;
}
