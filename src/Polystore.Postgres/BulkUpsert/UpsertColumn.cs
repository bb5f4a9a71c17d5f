using Npgsql;
using NpgsqlTypes;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>How one property of a row becomes one column value (typed, so values are never boxed).</summary>
internal abstract class UpsertColumn<T>(string name)
{
    public string Name { get; } = name;

    public abstract Type ValueType { get; }

    /// <summary>Writes the row's value as <paramref name="dbType"/> when the column's type has one, else by <paramref name="dataTypeName"/>.</summary>
    public abstract Task WriteAsync(NpgsqlBinaryImporter importer, T row, string dataTypeName, NpgsqlDbType? dbType, CancellationToken cancellationToken);

    /// <summary>A 64-bit hash of this column's value (strings: XxHash3; others: their own hash code).</summary>
    public abstract ulong Hash(T row);

    /// <summary>The row's value when this column is read as a string (null otherwise, or when the value is null).</summary>
    public abstract string? Text(T row);

    /// <summary>Buffers values into a typed array (for the unnest path of small batches).</summary>
    public abstract IValueBuffer<T> CreateBuffer(int capacity);
}
