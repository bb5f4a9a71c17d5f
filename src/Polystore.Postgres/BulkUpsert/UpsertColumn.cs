using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>How one property of a row becomes one column value (typed, so values are never boxed).</summary>
internal abstract class UpsertColumn<T>(string name)
{
    public string Name { get; } = name;

    public abstract Type ValueType { get; }

    public abstract Task WriteAsync(NpgsqlBinaryImporter importer, T row, string dataTypeName, CancellationToken cancellationToken);

    /// <summary>A 64-bit hash of this column's value (strings: XxHash3; others: their own hash code).</summary>
    public abstract ulong Hash(T row);

    /// <summary>Buffers values into a typed array (for the unnest path of small batches).</summary>
    public abstract IValueBuffer<T> CreateBuffer(int capacity);
}

internal interface IValueBuffer<in T>
{
    void Add(T row);

    NpgsqlParameter ToParameter(string dataTypeName);
}

internal sealed class UpsertColumn<T, TValue>(string name, Func<T, TValue> getter) : UpsertColumn<T>(name)
{
    public override Type ValueType => typeof(TValue);

    public override Task WriteAsync(NpgsqlBinaryImporter importer, T row, string dataTypeName, CancellationToken cancellationToken)
    {
        var value = getter(row);
        return value is null ? importer.WriteNullAsync(cancellationToken) : importer.WriteAsync(value, dataTypeName, cancellationToken);
    }

    public override ulong Hash(T row) => getter(row) switch
    {
        null => 0x9E3779B97F4A7C15UL,
        string s => System.IO.Hashing.XxHash3.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.AsSpan())),
        long l => (ulong)l,
        var v => (ulong)(uint)EqualityComparer<TValue>.Default.GetHashCode(v),
    };

    public override IValueBuffer<T> CreateBuffer(int capacity) => new Buffer(getter, capacity);

    private sealed class Buffer(Func<T, TValue> getter, int capacity) : IValueBuffer<T>
    {
        private readonly List<TValue> _values = new(capacity);

        public void Add(T row) => _values.Add(getter(row));

        public NpgsqlParameter ToParameter(string dataTypeName) =>
            new NpgsqlParameter<TValue[]> { TypedValue = [.. _values], DataTypeName = dataTypeName + "[]" };
    }
}
