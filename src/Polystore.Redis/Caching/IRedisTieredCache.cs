namespace Polystore.Redis.Caching;

/// <summary>
/// The tiered cache as a service: what <see cref="RedisTieredCache"/> offers, for code that takes it from dependency
/// injection, decorates it or replaces it in a test. Applications that only need a store-neutral cache can take
/// <see cref="Microsoft.Extensions.Caching.Hybrid.HybridCache"/> or
/// <see cref="Microsoft.Extensions.Caching.Distributed.IDistributedCache"/> instead (see <see cref="RedisHybridCache"/>
/// and <see cref="RedisDistributedCache"/>); this interface keeps what those cannot say: write-through, prefix and
/// Redis-glob invalidation, and the fail-safe semantics of <see cref="RedisTieredCacheOptions"/>.
/// </summary>
public interface IRedisTieredCache
{
    /// <summary>
    /// Returns the cached value of <paramref name="key"/>, or runs <paramref name="factory"/> once per process
    /// however many callers miss the key at once, caches its result and hands it to all of them.
    /// The factory gets no caller's token; each caller's own <paramref name="cancellationToken"/> only stops its wait.
    /// A factory that throws caches nothing and every waiting caller gets its exception, unless fail-safe serves the
    /// last value. A null result is cached only with <see cref="RedisTieredCacheOptions.NegativeTtl"/>.
    /// </summary>
    ValueTask<T?> GetOrSetAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry = null, CancellationToken cancellationToken = default);

    /// <summary>Reads <paramref name="key"/> (L1, then Redis) without calling any factory; only a fresh value is found.</summary>
    ValueTask<(bool Found, T? Value)> TryGetAsync<T>(string key, CancellationToken cancellationToken = default);

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/> in Redis (and L1), and tells other instances to drop their L1 copy.</summary>
    Task SetAsync<T>(string key, T value, CacheEntryOptions? entry = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Write-through: runs the source write first, then caches what it returned. A failed source write caches
    /// nothing (and removes the key's entry); a failed cache write leaves the source write standing and says so in
    /// the result.
    /// </summary>
    Task<WriteThroughResult<T>> WriteThroughAsync<T>(string key, Func<CancellationToken, Task<T>> sourceWrite, CacheEntryOptions? entry = null, CancellationToken cancellationToken = default);

    /// <summary>Removes one key everywhere (Redis, this L1, other instances' L1); true when Redis had it.</summary>
    Task<bool> RemoveAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Removes every entry whose key starts with <paramref name="keyPrefix"/>; returns how many Redis had.</summary>
    Task<long> RemoveByPrefixAsync(string keyPrefix, CancellationToken cancellationToken = default);

    /// <summary>Removes every entry whose key matches the Redis glob <paramref name="pattern"/>; returns how many Redis had.</summary>
    Task<long> RemoveByPatternAsync(string pattern, CancellationToken cancellationToken = default);

    /// <summary>Removes every entry stored with <paramref name="tag"/>; returns how many Redis had.</summary>
    Task<long> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default);
}
