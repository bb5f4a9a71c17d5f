using System.Diagnostics.Metrics;

namespace Polystore.Redis;

/// <summary>The toolkit's <see cref="Meter"/>: instrument names are public so dashboards and tests can subscribe.</summary>
public static class RedisMetrics
{
    /// <summary>The meter name, "Polystore.Redis".</summary>
    public const string MeterName = "Polystore.Redis";

    /// <summary>Counter of rate-limit decisions taken without Redis (tag <c>outcome</c> = allowed | denied | thrown).</summary>
    public const string RateLimitFallbacks = "polystore.redis.ratelimit.fallbacks";

    /// <summary>
    /// Counter of rate-limit permits given back because their caller never received the decision (tag <c>reason</c>
    /// = cancelled | failed: the caller's token fired while the call was on the wire, or the call failed after it may have run).
    /// </summary>
    public const string RateLimitGivenBack = "polystore.redis.ratelimit.given_back";

    /// <summary>Counter of cache operations that continued without Redis (tag <c>operation</c>).</summary>
    public const string CacheFallbacks = "polystore.redis.cache.fallbacks";

    /// <summary>Counter of lock leases lost before release (tag <c>reason</c>).</summary>
    public const string LocksLost = "polystore.redis.lock.lost";

    /// <summary>
    /// Observable gauge of each connection's circuit breaker (unit <c>{state}</c>): 0 = closed, 1 = half-open (a PING is
    /// probing), 2 = open; tag <c>connection</c> = the configured endpoints. See <see cref="RedisCircuitBreakerOptions"/>.
    /// </summary>
    public const string CircuitBreakerState = "polystore.redis.circuit_breaker.state";

    /// <summary>
    /// Counter of calls that skipped Redis because its circuit breaker was open (unit <c>{call}</c>; tags <c>component</c>
    /// = cache | ratelimit | lock | ping, and <c>connection</c>). Each is also counted where the component counts its fallbacks.
    /// </summary>
    public const string CircuitBreakerShortCircuited = "polystore.redis.circuit_breaker.short_circuited";

    internal static readonly Meter Meter = new(MeterName);

    internal static readonly ObservableGauge<int> CircuitBreakerStateGauge = Meter.CreateObservableGauge(CircuitBreakerState, RedisCircuitBreaker.Measure, unit: "{state}", description: "Circuit breaker state per Redis connection: 0 closed, 1 half-open, 2 open.");

    internal static readonly Counter<long> ShortCircuitedCounter = Meter.CreateCounter<long>(CircuitBreakerShortCircuited, unit: "{call}", description: "Calls that skipped Redis because its circuit breaker was open.");

    internal static readonly Counter<long> RateLimitFallbackCounter = Meter.CreateCounter<long>(RateLimitFallbacks, description: "Rate-limit decisions taken while Redis was unavailable.");

    internal static readonly Counter<long> RateLimitGivenBackCounter = Meter.CreateCounter<long>(RateLimitGivenBack, description: "Rate-limit permits given back because their caller never received the decision.");

    internal static readonly Counter<long> CacheFallbackCounter = Meter.CreateCounter<long>(CacheFallbacks, description: "Cache operations that continued without Redis.");

    internal static readonly Counter<long> LockLostCounter = Meter.CreateCounter<long>(LocksLost, description: "Lock leases lost before release.");

    internal static void RecordCacheFallback(string operation) =>
        CacheFallbackCounter.Add(1, new KeyValuePair<string, object?>("operation", operation));
}
