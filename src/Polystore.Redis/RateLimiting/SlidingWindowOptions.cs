namespace Polystore.Redis.RateLimiting;

/// <summary>What the limiter does when Redis cannot be reached.</summary>
public enum RedisFailureMode
{
    /// <summary>Deny the request (safe for abuse protection). Default.</summary>
    FailClosed,

    /// <summary>Allow the request (safe for availability).</summary>
    FailOpen,

    /// <summary>Throw the Redis exception to the caller.</summary>
    Throw,
}

/// <summary>Options of <see cref="RedisSlidingWindowRateLimiter"/>.</summary>
public sealed record SlidingWindowOptions
{
    /// <summary>Permits admitted per window and key.</summary>
    public int PermitLimit { get; init; } = 100;

    /// <summary>The window length (at least 1 ms).</summary>
    public TimeSpan Window { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Prefix of every key; one sorted set per limited key, <c>{prefix:key}:log</c>.</summary>
    public string KeyPrefix { get; init; } = "polystore:rl";

    /// <summary>What to do when Redis is unavailable. Each such decision is counted in <see cref="RedisMetrics.RateLimitFallbacks"/>.</summary>
    public RedisFailureMode OnRedisFailure { get; init; } = RedisFailureMode.FailClosed;

    internal SlidingWindowOptions Validated()
    {
        if (PermitLimit < 1) throw new ArgumentOutOfRangeException(nameof(PermitLimit), PermitLimit, $"{nameof(PermitLimit)} must be at least 1.");
        if (Window < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(Window), Window, $"{nameof(Window)} must be at least 1 ms.");
        RedisKeys.ValidatePrefix(KeyPrefix, nameof(KeyPrefix));
        if (!Enum.IsDefined(OnRedisFailure)) throw new ArgumentOutOfRangeException(nameof(OnRedisFailure), OnRedisFailure, "unknown failure mode");
        return this with { };
    }
}

/// <summary>The outcome of one rate-limit call.</summary>
/// <param name="Allowed">Whether the permits were admitted (and recorded).</param>
/// <param name="Remaining">Permits still free in the window after this call.</param>
/// <param name="RetryAfter">When denied: how long until enough of the oldest entries leave the window; zero when allowed.</param>
/// <param name="Reset">How long until the window is empty again.</param>
/// <param name="ServerTimeMicroseconds">Redis server time (µs since the Unix epoch) the decision was taken at; 0 for a fallback decision.</param>
/// <param name="IsFallback">True when Redis was unavailable and the decision came from <see cref="SlidingWindowOptions.OnRedisFailure"/>.</param>
public readonly record struct RateLimitDecision(bool Allowed, long Remaining, TimeSpan RetryAfter, TimeSpan Reset, long ServerTimeMicroseconds, bool IsFallback = false);
