namespace Polystore.Redis.Caching;

/// <summary>Options of <see cref="RedisTieredCache"/>.</summary>
public sealed record RedisTieredCacheOptions
{
    /// <summary>
    /// Prefix of every Redis key of the cache: entries at <c>prefix:e:key</c>, tag sets at <c>prefix:t:tag</c>
    /// (separate key spaces, so no key or tag can reach the other), and of the invalidation channel.
    /// </summary>
    public string KeyPrefix { get; init; } = "polystore:cache";

    /// <summary>Time to live of an entry when the call gives none.</summary>
    public TimeSpan DefaultTtl { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Each TTL is lengthened by a random 0..JitterFraction of itself, so entries written together do not expire together.</summary>
    public double JitterFraction { get; init; } = 0.1;

    /// <summary>When set, a factory result of null is cached (as "known missing") for this long. Null = misses are not cached.</summary>
    public TimeSpan? NegativeTtl { get; init; }

    /// <summary>
    /// Keep entries for <see cref="FailSafeMaxAge"/> past their TTL and serve that last value when the
    /// factory throws (and when Redis is down, from L1).
    /// </summary>
    public bool FailSafe { get; init; }

    /// <summary>How long past its TTL a value may still be served by fail-safe.</summary>
    public TimeSpan FailSafeMaxAge { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Keep an in-process L1 copy. Changes are broadcast over Redis pub/sub among the instances with the same prefix
    /// that use L1; a change made through an instance without L1 is not broadcast, so L1 copies elsewhere keep serving
    /// the old value until their <see cref="L1Ttl"/> ends.
    /// </summary>
    public bool UseL1 { get; init; }

    /// <summary>Longest time an L1 copy is trusted (bounded by the entry's TTL as well).</summary>
    public TimeSpan L1Ttl { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Most L1 entries; above it expired entries are dropped first, then arbitrary ones.</summary>
    public int L1MaxEntries { get; init; } = 100_000;

    /// <summary>
    /// How long a removed key keeps a tombstone (a 9-byte value, about 70 bytes of Redis memory with its key) in place
    /// of its entry. A factory's result is stored only if its key still holds what the read before the factory found:
    /// a removal meanwhile means the factory may have read the source before the change being invalidated, so its
    /// result is served to its callers but not cached. The tombstone is what lets a fill see a removal of a key that
    /// was absent; a fill that found its key absent and whose factory ran longer than this stores nothing.
    /// Set it above your slowest factory.
    /// </summary>
    public TimeSpan TombstoneTtl { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Value serializer; System.Text.Json by default.</summary>
    public ICacheSerializer Serializer { get; init; } = new SystemTextJsonCacheSerializer();

    /// <summary>Throw Redis errors to callers instead of continuing without the cache (each such fallback is counted in <see cref="RedisMetrics.CacheFallbacks"/>).</summary>
    public bool ThrowOnRedisErrors { get; init; }

    /// <summary>
    /// The clock entry TTLs (when an entry stops being fresh) and L1 lifetimes are measured with. Redis removes
    /// a key by its own clock when its physical TTL (the TTL, plus <see cref="FailSafeMaxAge"/> with fail-safe) ends.
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// The connection's circuit breaker and the timeout of each Redis call (see <see cref="RedisCircuitBreakerOptions"/>):
    /// components of one connection with equal options share one breaker.
    /// </summary>
    public RedisCircuitBreakerOptions CircuitBreaker { get; init; } = new();

    internal RedisTieredCacheOptions Validated()
    {
        RedisKeys.ValidatePrefix(KeyPrefix, nameof(KeyPrefix));
        if (DefaultTtl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(DefaultTtl), DefaultTtl, $"{nameof(DefaultTtl)} must be positive.");
        if (JitterFraction is < 0 or > 1 || double.IsNaN(JitterFraction)) throw new ArgumentOutOfRangeException(nameof(JitterFraction), JitterFraction, $"{nameof(JitterFraction)} must be between 0 and 1.");
        if (NegativeTtl is { } n && n <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(NegativeTtl), n, $"{nameof(NegativeTtl)} must be positive.");
        if (FailSafeMaxAge <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(FailSafeMaxAge), FailSafeMaxAge, $"{nameof(FailSafeMaxAge)} must be positive.");
        if (L1Ttl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(L1Ttl), L1Ttl, $"{nameof(L1Ttl)} must be positive.");
        if (TombstoneTtl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(TombstoneTtl), TombstoneTtl, $"{nameof(TombstoneTtl)} must be positive.");
        if (L1MaxEntries < 1) throw new ArgumentOutOfRangeException(nameof(L1MaxEntries), L1MaxEntries, $"{nameof(L1MaxEntries)} must be at least 1.");
        ArgumentNullException.ThrowIfNull(Serializer, nameof(Serializer));
        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
        ArgumentNullException.ThrowIfNull(CircuitBreaker, nameof(CircuitBreaker));
        CircuitBreaker.Validated(nameof(CircuitBreaker));
        return this with { };
    }
}
