namespace Polystore.Postgres.BulkUpsert;

/// <summary>An enumerator of a synchronous sequence, which also hands over the whole collection when it is one.</summary>
internal sealed class ListRows<T>(IEnumerator<T> inner, CancellationToken cancellationToken, IReadOnlyCollection<T>? inMemory) : IAsyncEnumerator<T>
{
    /// <summary>The whole sequence, when it is a collection in memory.</summary>
    public IReadOnlyCollection<T>? InMemory { get; } = inMemory;

    /// <summary>Whether <see cref="InMemory"/> was proven to have unique keys (null: not checked yet).</summary>
    public bool? KeysUnique { get; set; }

    /// <summary>The key proof started early (see <see cref="StartKeyProof"/>), and the key columns it hashed.</summary>
    private (Task<bool> Proof, UpsertColumn<T>[] Keys)? _early;

    /// <summary>
    /// Starts proving the keys unique on the thread pool, so the hashing overlaps the round trips that come before
    /// the COPY (catalog check, BEGIN, staging table) instead of following them.
    /// </summary>
    public void StartKeyProof(UpsertColumn<T>[] keys)
    {
        if (InMemory is not { } all || KeysUnique is not null || _early is not null) return;
        _early = (Task.Run(() => KeyTracker<T>.Unique(keys, all)), keys);
    }

    /// <summary>Whether <see cref="InMemory"/> has unique <paramref name="keys"/>: the early proof when it hashed the same columns, else hashed now.</summary>
    public async ValueTask<bool> KeysUniqueAsync(UpsertColumn<T>[] keys)
    {
        if (KeysUnique is { } known) return known;
        if (_early is { } early)
        {
            _early = null;
            var proven = await early.Proof.ConfigureAwait(false);
            if (early.Keys.AsSpan().SequenceEqual(keys)) return (KeysUnique = proven).Value;
        }
        return (KeysUnique = KeyTracker<T>.Unique(keys, InMemory!)).Value;
    }

    /// <summary>
    /// Whether <see cref="InMemory"/> has unique <paramref name="keys"/>, when that is known without waiting: proven
    /// before, or by an early proof of the same columns that has finished. Null while it is not.
    /// </summary>
    public bool? KeysUniqueIfKnown(UpsertColumn<T>[] keys)
    {
        if (KeysUnique is { } known) return known;
        if (_early is { Proof.IsCompletedSuccessfully: true } early && early.Keys.AsSpan().SequenceEqual(keys)) return early.Proof.Result;
        return null;
    }

    /// <summary>How many rows <see cref="MoveNextAsync"/> has handed out (equal to a batch's size: the batch began at the first row).</summary>
    public long Read { get; private set; }

    public T Current => inner.Current;

    public ValueTask<bool> MoveNextAsync()
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!inner.MoveNext()) return ValueTask.FromResult(false);
        Read++;
        return ValueTask.FromResult(true);
    }

    public ValueTask DisposeAsync()
    {
        inner.Dispose();
        return ValueTask.CompletedTask;
    }
}
