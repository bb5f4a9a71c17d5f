namespace Polystore.Postgres.BulkUpsert;

/// <summary>A synchronous sequence seen as an async one (each step completes synchronously).</summary>
internal sealed class SyncRows<T>(IEnumerable<T> rows) : IAsyncEnumerable<T>
{
    // Collections can be read twice (once to hash the keys); a lazy sequence is read once.
    public IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default) =>
        new ListRows<T>(rows.GetEnumerator(), cancellationToken, rows as IReadOnlyCollection<T>);
}
