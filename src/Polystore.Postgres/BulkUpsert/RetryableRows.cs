using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// A transaction Polystore owns that loses a lock conflict (a deadlock, or a serialization failure) was rolled back
/// whole by PostgreSQL, so it can simply run again. Concurrent upserts of overlapping keys lock rows in the order
/// their plan visits them, which is not always the caller's order (a MERGE may walk the table instead), so this
/// happens without any mistake of the caller's.
/// </summary>
internal static class LockConflict
{
    /// <summary>Attempts in all, the first included.</summary>
    public const int MaxAttempts = 5;

    public static bool Lost(Exception e) =>
        e is PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure };

    /// <summary>
    /// A short random pause before the <paramref name="attempt"/>th retry: the session that won the conflict gets to
    /// finish first (run at once, the retry can take the contested row again before the winner, woken by the rollback,
    /// does, and lose again), and two losers do not meet again in step. 5-20 ms, doubling per retry: 300 ms at most in all.
    /// </summary>
    public static Task BackOffAsync(int attempt, CancellationToken cancellationToken) =>
        Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(5, 21) << (attempt - 1)), cancellationToken);
}

/// <summary>
/// The caller's rows, kept so that a transaction can read its rows again after losing a lock conflict: a collection
/// in memory is read again past the rows already committed; a stream is recorded while it is read (from the last
/// <see cref="Committed"/>), up to a bound, and past that it can no longer be read again.
/// </summary>
internal sealed class RetryableRows<T> : IAsyncDisposable
{
    private readonly IReadOnlyCollection<T>? _collection;
    private readonly Recorder? _recorder;
    private readonly CancellationToken _cancellationToken;
    private ListRows<T>? _made; // a collection read again: ours to dispose
    private long _committed;    // rows of the collection in committed transactions

    /// <param name="rows">The caller's rows.</param>
    /// <param name="bound">The most rows of a stream recorded for one transaction.</param>
    /// <param name="cancellationToken">The call's token, for a collection read again.</param>
    public RetryableRows(IAsyncEnumerator<T> rows, int bound, CancellationToken cancellationToken)
    {
        _cancellationToken = cancellationToken;
        if (rows is ListRows<T> { InMemory: { } all })
        {
            _collection = all;
            Rows = rows;
        }
        else Rows = _recorder = new Recorder(rows, bound);
    }

    /// <summary>The rows to read now.</summary>
    public IAsyncEnumerator<T> Rows { get; set; }

    /// <summary>
    /// Whether the transaction that failed with <paramref name="error"/> on its <paramref name="attempt"/>th attempt
    /// runs again: it lost a lock conflict, attempts are left, and its rows can be read again.
    /// </summary>
    public bool MayRetry(Exception error, int attempt) =>
        LockConflict.Lost(error) && attempt < LockConflict.MaxAttempts && (_collection is not null || _recorder!.Kept is not null);

    /// <summary>Logs the retry and points <see cref="Rows"/> at the first row not committed (only after <see cref="MayRetry"/>).</summary>
    public async ValueTask RewindAsync(Exception error, int attempt, PostgresBulkUpsertOptions options, string table)
    {
        options.Logger.BulkUpsertRetried(table, ((PostgresException)error).SqlState, attempt);
        await LockConflict.BackOffAsync(attempt, _cancellationToken).ConfigureAwait(false);
        if (_collection is not null)
        {
            // InMemory stays the whole collection: what was proven of its keys holds for any part of it.
            var proven = (Rows as ListRows<T>)?.KeysUnique;
            if (_made is not null) await _made.DisposeAsync().ConfigureAwait(false);
            var rest = _committed == 0 ? _collection : _collection.Skip((int)_committed);
            Rows = _made = new ListRows<T>(rest.GetEnumerator(), _cancellationToken, _collection) { KeysUnique = proven };
            return;
        }
        Rows = new ReplayRows<T>(_recorder!.Kept!, _recorder);
    }

    /// <summary>A transaction that read <paramref name="rows"/> rows committed: they are not read again.</summary>
    public void Committed(long rows)
    {
        _committed += rows;
        _recorder?.Restart();
    }

    public ValueTask DisposeAsync() => _made?.DisposeAsync() ?? ValueTask.CompletedTask;

    /// <summary>Passes the source's rows through and keeps them while there are at most <c>bound</c>.</summary>
    private sealed class Recorder(IAsyncEnumerator<T> source, int bound) : IAsyncEnumerator<T>
    {
        /// <summary>Every row read since the last <see cref="Restart"/>; null once more than the bound were.</summary>
        public List<T>? Kept { get; private set; } = [];

        public void Restart() => Kept = [];

        public T Current => source.Current;

        public ValueTask<bool> MoveNextAsync()
        {
            if (Kept is null) return source.MoveNextAsync();
            var next = source.MoveNextAsync();
            if (!next.IsCompletedSuccessfully) return KeepAsync(next);
            var more = next.Result;
            Keep(more);
            return ValueTask.FromResult(more);
        }

        private async ValueTask<bool> KeepAsync(ValueTask<bool> next)
        {
            var more = await next.ConfigureAwait(false);
            Keep(more);
            return more;
        }

        private void Keep(bool more)
        {
            if (!more || Kept is null) return;
            if (Kept.Count < bound) Kept.Add(source.Current);
            else Kept = null;
        }

        // The caller disposes the enumerator it gave.
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
