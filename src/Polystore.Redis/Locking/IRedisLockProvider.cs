namespace Polystore.Redis.Locking;

/// <summary>
/// Hands out fenced locks (see <see cref="RedisLockProvider"/>), for code that takes the provider from dependency
/// injection, decorates it or replaces it in a test.
/// </summary>
public interface IRedisLockProvider
{
    /// <summary>
    /// Tries to take the lock on <paramref name="resource"/>, waiting up to <paramref name="waitTimeout"/>
    /// (zero = one attempt, <see cref="Timeout.InfiniteTimeSpan"/> = until it is free). Returns null when it stays taken.
    /// </summary>
    ValueTask<IRedisLock?> TryAcquireAsync(string resource, TimeSpan waitTimeout = default, CancellationToken cancellationToken = default);

    /// <summary>Like <see cref="TryAcquireAsync"/> but throws <see cref="TimeoutException"/> when the wait runs out.</summary>
    ValueTask<IRedisLock> AcquireAsync(string resource, TimeSpan waitTimeout, CancellationToken cancellationToken = default);

    /// <summary>
    /// Raises the fencing counter of <paramref name="resource"/> to at least <paramref name="atLeast"/> (it never lowers
    /// it), so the next acquire gets a larger token; returns the counter after. For a store that keeps the largest token
    /// it accepted, once Redis lost the counter (a restart without persistence, a failover that lost its last
    /// increments): its writes would otherwise be refused as stale until the counter caught up.
    /// </summary>
    ValueTask<long> RaiseFencingTokenAsync(string resource, long atLeast, CancellationToken cancellationToken = default);
}
