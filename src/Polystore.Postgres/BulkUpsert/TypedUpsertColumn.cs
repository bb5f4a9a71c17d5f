using Npgsql;
using NpgsqlTypes;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>A column read from each row by a typed getter.</summary>
internal sealed class TypedUpsertColumn<T, TValue>(string name, Func<T, TValue> getter) : UpsertColumn<T>(name)
{
    public override Type ValueType => typeof(TValue);

    public override Task WriteAsync(NpgsqlBinaryImporter importer, T row, string dataTypeName, NpgsqlDbType? dbType, CancellationToken cancellationToken)
    {
        var value = getter(row);
        if (value is null) return importer.WriteNullAsync(cancellationToken);
        return dbType is { } known ? importer.WriteAsync(value, known, cancellationToken) : importer.WriteAsync(value, dataTypeName, cancellationToken);
    }

    public override ulong Hash(T row) => getter(row) switch
    {
        null => 0x9E3779B97F4A7C15UL,
        string s => System.IO.Hashing.XxHash3.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.AsSpan())),
        long l => (ulong)l,
        var v => (ulong)(uint)EqualityComparer<TValue>.Default.GetHashCode(v),
    };

    public override string? Text(T row) => typeof(TValue) == typeof(string) ? (string?)(object?)getter(row) : null;

    public override IValueBuffer<T> CreateBuffer(int capacity) => new Buffer(getter, capacity);

    private sealed class Buffer(Func<T, TValue> getter, int capacity) : IValueBuffer<T>
    {
        private readonly List<TValue> _values = new(capacity);

        public void Add(T row) => _values.Add(getter(row));

        public NpgsqlParameter ToParameter(string dataTypeName) =>
            new NpgsqlParameter<TValue[]> { TypedValue = [.. _values], DataTypeName = dataTypeName + "[]" };
    }
}
