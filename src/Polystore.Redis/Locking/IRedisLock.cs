namespace Polystore.Redis.Locking;

/// <summary>
/// A held lock (see <see cref="RedisLock"/>). Dispose (or <c>await using</c>) releases it; pass
/// <see cref="FencingToken"/> to downstream writes so they can reject a stale holder.
/// </summary>
public interface IRedisLock : IAsyncDisposable
{
    /// <summary>The locked resource name.</summary>
    string Resource { get; }

    /// <summary>Strictly increasing per resource across all holders; never reused.</summary>
    long FencingToken { get; }

    /// <summary>Cancelled when this holder must assume it no longer holds the lock.</summary>
    CancellationToken LostToken { get; }

    /// <summary>Whether the lease is still believed valid (not lost, not run out, not released).</summary>
    bool IsHeld { get; }

    /// <summary>
    /// Resets the lease to the configured expiry if this holder still owns it; false when it was lost. Once lost, always
    /// lost: <see cref="IsHeld"/> stays false and this keeps returning false.
    /// </summary>
    ValueTask<bool> ExtendAsync(CancellationToken cancellationToken = default);

    /// <summary>Releases the lock and waits for Redis to confirm; false when it had already expired or moved on.</summary>
    ValueTask<bool> ReleaseAsync(CancellationToken cancellationToken = default);
}
