namespace Polystore.Redis.RateLimiting;

/// <summary>Options of <see cref="RedisSlidingWindowRateLimiter"/>.</summary>
public sealed record RedisSlidingWindowOptions
{
    /// <summary>Permits admitted per window and key.</summary>
    public int PermitLimit { get; init; } = 100;

    /// <summary>The window length (at least 1 ms).</summary>
    public TimeSpan Window { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Prefix of every key; one sorted set per limited key, <c>{prefix:key}:log</c>.</summary>
    public string KeyPrefix { get; init; } = "polystore:rl";

    /// <summary>What to do when Redis is unavailable. Each such decision is counted in <see cref="RedisMetrics.RateLimitFallbacks"/>.</summary>
    public RedisFailureMode OnRedisFailure { get; init; } = RedisFailureMode.FailClosed;

    /// <summary>
    /// The clock of the <see cref="System.Threading.RateLimiting.RateLimiter"/> adapters: idle time and the waits
    /// of 0-permit acquires. Decisions always use Redis server time.
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// The connection's circuit breaker and the timeout of each Redis call (see <see cref="RedisCircuitBreakerOptions"/>):
    /// components of one connection with equal options share one breaker.
    /// </summary>
    public RedisCircuitBreakerOptions CircuitBreaker { get; init; } = new();

    internal RedisSlidingWindowOptions Validated()
    {
        if (PermitLimit < 1) throw new ArgumentOutOfRangeException(nameof(PermitLimit), PermitLimit, $"{nameof(PermitLimit)} must be at least 1.");
        if (Window < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(Window), Window, $"{nameof(Window)} must be at least 1 ms.");
        RedisKeys.ValidatePrefix(KeyPrefix, nameof(KeyPrefix));
        if (!Enum.IsDefined(OnRedisFailure)) throw new ArgumentOutOfRangeException(nameof(OnRedisFailure), OnRedisFailure, "unknown failure mode");
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
        ArgumentNullException.ThrowIfNull(CircuitBreaker, nameof(CircuitBreaker));
        CircuitBreaker.Validated(nameof(CircuitBreaker));
        return this with { };
    }
}
