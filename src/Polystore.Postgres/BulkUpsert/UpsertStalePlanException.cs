namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// The check of a cached plan failed in the transaction's first batch: the table changed since its catalog facts
/// were read. Nothing was written and only <see cref="Head"/> was read from the rows, so the caller can roll back,
/// read the catalog again and start over with <see cref="Replay"/>.
/// </summary>
internal sealed class UpsertStalePlanException<T>(List<T> head, bool more, Exception inner)
    : Exception("the table changed since its catalog facts were read", inner)
{
    public List<T> Head { get; } = head;

    /// <summary>The rows again: the ones already read, then (when there are more) the rest of <paramref name="rest"/>.</summary>
    public IAsyncEnumerator<T> Replay(IAsyncEnumerator<T> rest) => new ReplayRows<T>(Head, more ? rest : null);
}
