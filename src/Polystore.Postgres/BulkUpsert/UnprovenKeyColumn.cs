using Npgsql;
using NpgsqlTypes;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// A key column whose values PostgreSQL may call equal where .NET does not (see
/// <see cref="PostgresBulkUpsertPlan{T}.ProvableKey"/>): every row hashes alike and has no text, so no batch is proven
/// free of duplicates by it, the server removes them (last row wins), and parallel mode keeps such rows on one
/// connection instead of dealing them by a hash PostgreSQL would not agree with.
/// </summary>
internal sealed class UnprovenKeyColumn<T>(UpsertColumn<T> inner) : UpsertColumn<T>(inner.Name)
{
    public override Type ValueType => inner.ValueType;

    public override Task WriteAsync(NpgsqlBinaryImporter importer, T row, string dataTypeName, NpgsqlDbType? dbType, CancellationToken cancellationToken) =>
        inner.WriteAsync(importer, row, dataTypeName, dbType, cancellationToken);

    public override ulong Hash(T row) => 0;

    public override string? Text(T row) => null;

    public override IValueBuffer<T> CreateBuffer(int capacity) => inner.CreateBuffer(capacity);
}
