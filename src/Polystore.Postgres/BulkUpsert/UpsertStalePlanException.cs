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
    public IAsyncEnumerator<T> Replay(IAsyncEnumerator<T> rest) => new ReplayRows(Head, more ? rest : null);

    private sealed class ReplayRows(List<T> head, IAsyncEnumerator<T>? rest) : IAsyncEnumerator<T>
    {
        private int _next;
        private bool _inRest;

        public T Current => _inRest ? rest!.Current : head[_next - 1];

        public ValueTask<bool> MoveNextAsync()
        {
            if (!_inRest && _next < head.Count)
            {
                _next++;
                return ValueTask.FromResult(true);
            }
            _inRest = true;
            return rest is null ? ValueTask.FromResult(false) : rest.MoveNextAsync();
        }

        // The caller disposes the enumerator it was given.
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
