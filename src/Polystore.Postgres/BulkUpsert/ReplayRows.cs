namespace Polystore.Postgres.BulkUpsert;

/// <summary>Rows already read, handed out again, then (when given) the rest of the enumerator they came from.</summary>
internal sealed class ReplayRows<T>(List<T> head, IAsyncEnumerator<T>? rest) : IAsyncEnumerator<T>
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
