namespace Polystore.Postgres.BulkUpsert;

/// <summary>An enumerator of a synchronous sequence, which also hands over the whole collection when it is one.</summary>
internal sealed class ListRows<T>(IEnumerator<T> inner, CancellationToken cancellationToken, IReadOnlyCollection<T>? inMemory) : IAsyncEnumerator<T>
{
    /// <summary>The whole sequence, when it is a collection in memory.</summary>
    public IReadOnlyCollection<T>? InMemory { get; } = inMemory;

    /// <summary>Whether <see cref="InMemory"/> was proven to have unique keys (null: not checked yet).</summary>
    public bool? KeysUnique { get; set; }

    public T Current => inner.Current;

    public ValueTask<bool> MoveNextAsync()
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(inner.MoveNext());
    }

    public ValueTask DisposeAsync()
    {
        inner.Dispose();
        return ValueTask.CompletedTask;
    }
}
