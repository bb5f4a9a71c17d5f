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

    /// <summary>
    /// Replicas that must acknowledge a batch of admissions (Redis <c>WAIT</c>, in the same round trip) before its
    /// callers are told "allowed"; 0 (default) = do not wait. With a primary and replicas (Sentinel), admissions the
    /// primary confirmed but had not yet replicated are lost in a failover, and the new primary admits that many
    /// again in the same window (see docs/reliability.md for the measured bound). With 1 (every replica, when there are
    /// several) no admission is lost that way. A batch that is not acknowledged within <see cref="ReplicaWaitTimeout"/>
    /// is answered as Redis unavailable (<see cref="OnRedisFailure"/>) and its entries are given back. Cost: the
    /// replica's acknowledgement on every batch, and the connection's other commands wait behind a WAIT that waits.
    /// </summary>
    public int WaitForReplicas { get; init; }

    /// <summary>How long a batch waits for <see cref="WaitForReplicas"/> (default 250 ms; below the circuit breaker's operation timeout).</summary>
    public TimeSpan ReplicaWaitTimeout { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// How long, at most, a denial is remembered in this process so that later calls for the same key and weight
    /// are denied without a round trip (default 1 s; <see cref="TimeSpan.Zero"/> asks Redis every time). A denial is
    /// never remembered past its RetryAfter (when the entry that frees the permits leaves the window), so this
    /// never admits more than the limit: a sliding log only frees permits as entries leave, or when permits are
    /// given back (a give-back by this process forgets the key at once). What it can miss, for at most this long,
    /// is a give-back by another process or a key deleted by hand: a call denied that Redis would have admitted.
    /// It keeps a key that is over its limit (a client retrying in a loop, an abusive one) from costing Redis a
    /// script call per request. Up to 65,536 keys are remembered.
    /// </summary>
    public TimeSpan RememberDenialsFor { get; init; } = TimeSpan.FromSeconds(1);

    internal RedisSlidingWindowOptions Validated()
    {
        if (PermitLimit < 1) throw new ArgumentOutOfRangeException(nameof(PermitLimit), PermitLimit, $"{nameof(PermitLimit)} must be at least 1.");
        if (Window < TimeSpan.FromMilliseconds(1)) throw new ArgumentOutOfRangeException(nameof(Window), Window, $"{nameof(Window)} must be at least 1 ms.");
        RedisKeys.ValidatePrefix(KeyPrefix, nameof(KeyPrefix));
        if (!Enum.IsDefined(OnRedisFailure)) throw new ArgumentOutOfRangeException(nameof(OnRedisFailure), OnRedisFailure, "unknown failure mode");
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
        ArgumentNullException.ThrowIfNull(CircuitBreaker, nameof(CircuitBreaker));
        CircuitBreaker.Validated(nameof(CircuitBreaker));
        if (RememberDenialsFor < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RememberDenialsFor), RememberDenialsFor, $"{nameof(RememberDenialsFor)} must not be negative (TimeSpan.Zero turns it off).");
        if (WaitForReplicas < 0) throw new ArgumentOutOfRangeException(nameof(WaitForReplicas), WaitForReplicas, $"{nameof(WaitForReplicas)} must not be negative.");
        if (WaitForReplicas > 0 && (ReplicaWaitTimeout < TimeSpan.FromMilliseconds(1)
            || (CircuitBreaker.OperationTimeout != Timeout.InfiniteTimeSpan && ReplicaWaitTimeout >= CircuitBreaker.OperationTimeout)))
            throw new ArgumentOutOfRangeException(nameof(ReplicaWaitTimeout), ReplicaWaitTimeout,
                $"{nameof(ReplicaWaitTimeout)} must be at least 1 ms and shorter than {nameof(CircuitBreaker)}.{nameof(RedisCircuitBreakerOptions.OperationTimeout)}.");
        return this with { };
    }
}
