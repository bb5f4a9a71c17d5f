using System.Diagnostics.Metrics;

namespace Polystore.Redis;

/// <summary>The toolkit's <see cref="Meter"/>: instrument names are public so dashboards and tests can subscribe.</summary>
public static class RedisMetrics
{
    /// <summary>The meter name, "Polystore.Redis".</summary>
    public const string MeterName = "Polystore.Redis";

    /// <summary>Counter of rate-limit decisions taken without Redis (unit <c>{decision}</c>; tag <c>outcome</c> = allowed | denied | thrown).</summary>
    public const string RateLimitFallbacks = "polystore.redis.ratelimit.fallbacks";

    /// <summary>
    /// Counter of rate-limit permits given back because their caller never received the decision (unit <c>{permit}</c>; tag <c>reason</c>
    /// = cancelled | failed: the caller's token fired while the call was on the wire, or the call failed after it may have run).
    /// </summary>
    public const string RateLimitGivenBack = "polystore.redis.ratelimit.given_back";

    /// <summary>Counter of cache operations that continued without Redis (unit <c>{operation}</c>; tag <c>operation</c>).</summary>
    public const string CacheFallbacks = "polystore.redis.cache.fallbacks";

    /// <summary>Counter of lock leases lost before release (unit <c>{lock}</c>; tag <c>reason</c>).</summary>
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

    /// <summary>Counter of cache reads served from a level (unit <c>{hit}</c>; tags <c>level</c> = l1 | l2, and <c>prefix</c> = the cache's key prefix).</summary>
    public const string CacheHits = "polystore.redis.cache.hits";

    /// <summary>
    /// Counter of cache reads that missed a level (unit <c>{miss}</c>; tags <c>level</c> = l1 | l2, and <c>prefix</c>). A read
    /// that misses L1 and finds Redis counts one L1 miss and one L2 hit; one served by its factory (or by fail-safe) an L2 miss.
    /// </summary>
    public const string CacheMisses = "polystore.redis.cache.misses";

    /// <summary>Counter of factory runs (unit <c>{call}</c>; tag <c>prefix</c>): at most one per key at a time in a process.</summary>
    public const string CacheFactoryCalls = "polystore.redis.cache.factory_calls";

    /// <summary>Counter of cache reads that joined a load of their key already in progress instead of starting one (unit <c>{call}</c>; tag <c>prefix</c>).</summary>
    public const string CacheStampedeMerges = "polystore.redis.cache.stampede_merges";

    /// <summary>
    /// Counter of factory results served but not stored (unit <c>{call}</c>; tags <c>reason</c> = changed | slow, and
    /// <c>prefix</c>): the key was written or removed while the factory ran (changed), or the factory found the key absent
    /// and ran longer than <see cref="Caching.RedisTieredCacheOptions.TombstoneTtl"/> (slow).
    /// </summary>
    public const string CacheFillsDiscarded = "polystore.redis.cache.fills_discarded";

    /// <summary>Counter of rate-limit decisions (unit <c>{decision}</c>; tags <c>outcome</c> = allowed | denied, and <c>prefix</c>), fallback decisions included.</summary>
    public const string RateLimitDecisions = "polystore.redis.ratelimit.decisions";

    /// <summary>
    /// Histogram of lock acquisitions, from the call to its outcome (unit <c>s</c>; tags <c>outcome</c> = acquired | timeout
    /// | cancelled (by the caller's token) | failed, and <c>prefix</c>): the wait time.
    /// </summary>
    public const string LockAcquireDuration = "polystore.redis.lock.acquire.duration";

    /// <summary>Counter of acquire attempts that found the lock held by another owner (unit <c>{attempt}</c>; tag <c>prefix</c>).</summary>
    public const string LockContention = "polystore.redis.lock.contention";

    internal static readonly Meter Meter = new(MeterName);

    internal static readonly Counter<long> CacheHitCounter = Meter.CreateCounter<long>(CacheHits, "{hit}", "Cache reads served from a level.");

    internal static readonly Counter<long> CacheMissCounter = Meter.CreateCounter<long>(CacheMisses, "{miss}", "Cache reads that missed a level.");

    internal static readonly Counter<long> CacheFactoryCallCounter = Meter.CreateCounter<long>(CacheFactoryCalls, "{call}", "Cache factory runs.");

    internal static readonly Counter<long> CacheStampedeMergeCounter = Meter.CreateCounter<long>(CacheStampedeMerges, "{call}", "Cache reads that joined a load already in progress.");

    internal static readonly Counter<long> CacheFillDiscardCounter = Meter.CreateCounter<long>(CacheFillsDiscarded, "{call}", "Factory results served but not cached: their key changed while the factory ran.");

    internal static readonly Counter<long> RateLimitDecisionCounter = Meter.CreateCounter<long>(RateLimitDecisions, "{decision}", "Rate-limit decisions.");

    internal static readonly Histogram<double> LockAcquireSeconds = Meter.CreateHistogram<double>(LockAcquireDuration, "s", "Lock acquisition time, waiting included.");

    internal static readonly Counter<long> LockContentionCounter = Meter.CreateCounter<long>(LockContention, "{attempt}", "Lock acquire attempts that found the lock held.");

    internal static readonly ObservableGauge<int> CircuitBreakerStateGauge = Meter.CreateObservableGauge(CircuitBreakerState, RedisCircuitBreaker.Measure, unit: "{state}", description: "Circuit breaker state per Redis connection: 0 closed, 1 half-open, 2 open.");

    internal static readonly Counter<long> ShortCircuitedCounter = Meter.CreateCounter<long>(CircuitBreakerShortCircuited, unit: "{call}", description: "Calls that skipped Redis because its circuit breaker was open.");

    internal static readonly Counter<long> RateLimitFallbackCounter = Meter.CreateCounter<long>(RateLimitFallbacks, unit: "{decision}", description: "Rate-limit decisions taken while Redis was unavailable.");

    internal static readonly Counter<long> RateLimitGivenBackCounter = Meter.CreateCounter<long>(RateLimitGivenBack, unit: "{permit}", description: "Rate-limit permits given back because their caller never received the decision.");

    internal static readonly Counter<long> CacheFallbackCounter = Meter.CreateCounter<long>(CacheFallbacks, unit: "{operation}", description: "Cache operations that continued without Redis.");

    internal static readonly Counter<long> LockLostCounter = Meter.CreateCounter<long>(LocksLost, unit: "{lock}", description: "Lock leases lost before release.");

    internal static void RecordCacheFallback(string operation) =>
        CacheFallbackCounter.Add(1, new KeyValuePair<string, object?>("operation", operation));
}
