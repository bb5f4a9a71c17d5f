namespace Polystore.Redis.Locking;

/// <summary>Options of <see cref="RedisLockProvider"/>.</summary>
public sealed record RedisLockOptions
{
    /// <summary>Lease length set with PX on acquire and on every extension.</summary>
    public TimeSpan Expiry { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Extend the lease in the background while the lock is held.</summary>
    public bool AutoExtend { get; init; }

    /// <summary>How often the background extension runs; default a third of <see cref="Expiry"/>.</summary>
    public TimeSpan? ExtendInterval { get; init; }

    /// <summary>
    /// Cap on total hold time with <see cref="AutoExtend"/>: after it, extension stops and the lease runs out,
    /// so a stuck holder cannot keep a resource forever. Null = no cap.
    /// </summary>
    public TimeSpan? MaxHoldTime { get; init; }

    /// <summary>First backoff pause while waiting; doubles up to <see cref="MaxBackoff"/>, each with full jitter.</summary>
    public TimeSpan MinBackoff { get; init; } = TimeSpan.FromMilliseconds(2);

    /// <summary>Longest backoff pause while waiting.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Key prefix; keys are <c>{prefix:resource}:lock</c> and <c>{prefix:resource}:fence</c>.</summary>
    public string KeyPrefix { get; init; } = "polystore:lock";

    /// <summary>
    /// The connection's circuit breaker and the timeout of each Redis call (see <see cref="RedisCircuitBreakerOptions"/>):
    /// components of one connection with equal options share one breaker. While it is open, acquires throw at once.
    /// </summary>
    public RedisCircuitBreakerOptions CircuitBreaker { get; init; } = new();

    /// <summary>
    /// Replicas that must acknowledge an acquire (Redis <c>WAIT</c>, in the same round trip) before its
    /// <see cref="RedisLock.FencingToken"/> is handed out; 0 (default) = do not wait. With a primary and replicas
    /// (Sentinel), an acquire the primary confirmed but had not yet replicated is lost in a failover, and the new
    /// primary would hand out the same token again; with 1 (every replica, when there are several), a token handed
    /// out is on a replica that a failover promotes, so tokens keep increasing across failovers and the lock itself
    /// survives them. An acquire that is not acknowledged within <see cref="ReplicaWaitTimeout"/> is released and
    /// throws a <see cref="StackExchange.Redis.RedisConnectionException"/>: the lock is unavailable while no replica
    /// is in sync. Cost: the replica's acknowledgement on every acquire, and the connection's other commands wait
    /// behind a WAIT that waits.
    /// </summary>
    public int WaitForReplicas { get; init; }

    /// <summary>How long an acquire waits for <see cref="WaitForReplicas"/> (default 250 ms; below the circuit breaker's operation timeout).</summary>
    public TimeSpan ReplicaWaitTimeout { get; init; } = TimeSpan.FromMilliseconds(250);

    internal TimeSpan Interval => ExtendInterval ?? Expiry / 3;

    internal RedisLockOptions Validated()
    {
        if (Expiry < TimeSpan.FromMilliseconds(10)) throw new ArgumentOutOfRangeException(nameof(Expiry), Expiry, $"{nameof(Expiry)} must be at least 10 ms.");
        if (ExtendInterval is { } i && (i <= TimeSpan.Zero || i >= Expiry))
            throw new ArgumentOutOfRangeException(nameof(ExtendInterval), i, $"{nameof(ExtendInterval)} must be positive and shorter than {nameof(Expiry)}.");
        if (MaxHoldTime is { } m && m < Expiry) throw new ArgumentOutOfRangeException(nameof(MaxHoldTime), m, $"{nameof(MaxHoldTime)} must not be shorter than {nameof(Expiry)}.");
        if (MinBackoff <= TimeSpan.Zero || MaxBackoff < MinBackoff)
            throw new ArgumentOutOfRangeException(nameof(MinBackoff), MinBackoff, $"{nameof(MinBackoff)} must be positive and not above {nameof(MaxBackoff)}.");
        RedisKeys.ValidatePrefix(KeyPrefix, nameof(KeyPrefix));
        ArgumentNullException.ThrowIfNull(CircuitBreaker, nameof(CircuitBreaker));
        CircuitBreaker.Validated(nameof(CircuitBreaker));
        if (WaitForReplicas < 0) throw new ArgumentOutOfRangeException(nameof(WaitForReplicas), WaitForReplicas, $"{nameof(WaitForReplicas)} must not be negative.");
        if (WaitForReplicas > 0 && (ReplicaWaitTimeout < TimeSpan.FromMilliseconds(1)
            || (CircuitBreaker.OperationTimeout != Timeout.InfiniteTimeSpan && ReplicaWaitTimeout >= CircuitBreaker.OperationTimeout)))
            throw new ArgumentOutOfRangeException(nameof(ReplicaWaitTimeout), ReplicaWaitTimeout,
                $"{nameof(ReplicaWaitTimeout)} must be at least 1 ms and shorter than {nameof(CircuitBreaker)}.{nameof(RedisCircuitBreakerOptions.OperationTimeout)}.");
        return this with { };
    }
}
