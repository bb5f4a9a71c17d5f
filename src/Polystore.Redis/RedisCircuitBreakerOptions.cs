namespace Polystore.Redis;

/// <summary>
/// The circuit breaker and the operation timeout of the Redis components (<see cref="Caching.RedisTieredCache"/>,
/// <see cref="RateLimiting.RedisSlidingWindowRateLimiter"/>, <see cref="Locking.RedisLockProvider"/>).
/// </summary>
/// <remarks>
/// There is one breaker per connection (<c>IConnectionMultiplexer</c>): every component of that connection given
/// equal options (the defaults, usually) shares it, so what one of them learns about an outage spares the others the
/// wait. It opens after <see cref="FailureThreshold"/> failures in a row (no success between them) within
/// <see cref="FailureWindow"/>, or at once when the connection is lost with no server left connected. While open,
/// calls do not reach Redis: the cache continues without it, the limiter answers as its failure mode says, and the lock
/// provider throws. After <see cref="BreakDuration"/> (or as soon as the connection is restored) a background PING is
/// the one trial (half-open): its success closes the breaker, its failure opens it for another <see cref="BreakDuration"/>.
/// </remarks>
public sealed record RedisCircuitBreakerOptions
{
    /// <summary>Whether the breaker may open (default true). <see cref="OperationTimeout"/> applies either way.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Failures in a row ("Redis unavailable" errors and operation timeouts) that open the breaker (default 5).</summary>
    public int FailureThreshold { get; init; } = 5;

    /// <summary>The failures that open the breaker must all fall within this span, counted from the first (default 10 s).</summary>
    public TimeSpan FailureWindow { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the breaker stays open before a PING probes Redis again (default 5 s).</summary>
    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The longest a caller waits for one Redis call (default 1 s), separate from the connection's socket timeout
    /// (redis.yaml <c>pool.socket_timeout</c>): a stopped or black-holed server holds no caller longer. A call given up
    /// this way counts as a failure and may still run later. <see cref="Timeout.InfiniteTimeSpan"/> = the socket timeout only.
    /// </summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The clock of the failure window, the break duration and the operation timeout.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The longest operation timeout a timer takes (about 49 days).</summary>
    private static readonly TimeSpan MaxTimeout = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    /// <summary>These options, checked; errors name the option as <c>owner.Property</c>.</summary>
    internal RedisCircuitBreakerOptions Validated(string owner)
    {
        if (FailureThreshold < 1) throw Bad(owner, nameof(FailureThreshold), FailureThreshold, "must be at least 1");
        if (FailureWindow <= TimeSpan.Zero || FailureWindow > MaxTimeout) throw Bad(owner, nameof(FailureWindow), FailureWindow, "must be positive and at most 49 days");
        if (BreakDuration <= TimeSpan.Zero || BreakDuration > MaxTimeout) throw Bad(owner, nameof(BreakDuration), BreakDuration, "must be positive and at most 49 days");
        if (OperationTimeout != Timeout.InfiniteTimeSpan && (OperationTimeout <= TimeSpan.Zero || OperationTimeout > MaxTimeout))
            throw Bad(owner, nameof(OperationTimeout), OperationTimeout, "must be positive and at most 49 days, or Timeout.InfiniteTimeSpan");
        ArgumentNullException.ThrowIfNull(TimeProvider, $"{owner}.{nameof(TimeProvider)}");
        return this;
    }

    private static ArgumentOutOfRangeException Bad(string owner, string option, object value, string rule) =>
        new($"{owner}.{option}", value, $"{owner}.{option} {rule}.");
}
