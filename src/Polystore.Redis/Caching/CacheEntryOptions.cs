namespace Polystore.Redis.Caching;

/// <summary>Per-call entry options of <see cref="RedisTieredCache"/>.</summary>
public sealed record CacheEntryOptions
{
    /// <summary>Time to live; default <see cref="RedisTieredCacheOptions.DefaultTtl"/>.</summary>
    public TimeSpan? Ttl { get; init; }

    /// <summary>Tags for <see cref="RedisTieredCache.RemoveByTagAsync"/>.</summary>
    public IReadOnlyList<string>? Tags { get; init; }

    /// <summary>The TTL exactly as given: no jitter, and no fail-safe extension of the Redis TTL (for expirations a caller relies on).</summary>
    internal bool ExactTtl { get; init; }

    /// <summary>A null value is stored for <see cref="Ttl"/> like any value, not for <see cref="RedisTieredCacheOptions.NegativeTtl"/> (HybridCache's rule).</summary>
    internal bool NullAsValue { get; init; }
}
