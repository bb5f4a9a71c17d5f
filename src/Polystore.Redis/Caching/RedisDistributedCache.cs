using System.Buffers.Binary;
using Microsoft.Extensions.Caching.Distributed;

namespace Polystore.Redis.Caching;

/// <summary>
/// A <see cref="RedisTieredCache"/> as an <see cref="IDistributedCache"/>, for ASP.NET Core session, the default
/// <see cref="Microsoft.Extensions.Caching.Hybrid.HybridCache"/> and any library that takes the abstraction.
/// </summary>
/// <remarks>
/// <para><b>Storage.</b> Values live in the tiered cache (Redis, plus L1 when it is on), serialized by
/// <see cref="RedisTieredCacheOptions.Serializer"/> behind a 17-byte header that carries their expirations, so read
/// them back through this adapter. A read returns a copy of the bytes.</para>
/// <para><b>Absolute expiration</b> (<see cref="DistributedCacheEntryOptions.AbsoluteExpiration"/> or
/// <see cref="DistributedCacheEntryOptions.AbsoluteExpirationRelativeToNow"/>; the relative one wins when both are
/// set, as in the in-box caches) is exact: no jitter, no fail-safe extension. One already past removes the key and
/// stores nothing, as <c>MemoryDistributedCache</c> does.</para>
/// <para><b>Sliding expiration</b> is supported: each <see cref="GetAsync"/> or <see cref="RefreshAsync"/> of a
/// sliding entry moves its expiry to now plus the sliding time (never past its absolute expiration) with one script
/// call that rewrites only the entry's expiry and Redis TTL (the value is not sent again, and no invalidation is
/// broadcast). So a sliding read costs one Redis round trip even when L1 has the value.</para>
/// <para><b>No expiration</b>: the entry gets <see cref="RedisTieredCacheOptions.DefaultTtl"/>; a Redis entry of
/// this cache never lives without a TTL.</para>
/// <para><b>Redis unavailable</b>: as the cache itself behaves (reads miss, writes and slides are dropped and counted
/// in <see cref="RedisMetrics.CacheFallbacks"/>), unless <see cref="RedisTieredCacheOptions.ThrowOnRedisErrors"/>.
/// Keys must not be empty. The synchronous methods block on the asynchronous ones.</para>
/// </remarks>
public sealed class RedisDistributedCache : IDistributedCache
{
    // Rewrites the logical expiry (bytes 1-8 of the entry, see CacheEntryFormat) of a value entry and its TTL.
    // A write racing a slide can get the slid expiry: at most the sliding time from now.
    private static readonly RedisScript Slide = new("""
        if redis.call('GETRANGE', KEYS[1], 0, 0) == '\1' then
          redis.call('SETRANGE', KEYS[1], 1, ARGV[1])
          return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0
        """);

    private readonly RedisTieredCache _cache;

    /// <summary>Adapts <paramref name="cache"/>.</summary>
    public RedisDistributedCache(RedisTieredCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        _cache = cache;
    }

    /// <inheritdoc />
    public byte[]? Get(string key) => GetAsync(key).GetAwaiter().GetResult();

    /// <inheritdoc />
    public async Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var (found, envelope) = await _cache.TryGetAsync<byte[]>(key, token).ConfigureAwait(false);
        if (!found || !DistributedCacheEnvelope.TryRead(envelope, out var slidingMs, out var absoluteUnixMs)) return null;
        if (slidingMs > 0) await SlideAsync(key, slidingMs, absoluteUnixMs, token).ConfigureAwait(false);
        return envelope.AsSpan(DistributedCacheEnvelope.HeaderSize).ToArray();
    }

    /// <inheritdoc />
    public void Set(string key, byte[] value, DistributedCacheEntryOptions options) => SetAsync(key, value, options).GetAwaiter().GetResult();

    /// <inheritdoc />
    public async Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(options);
        var now = _cache.Clock.UnixMs;
        var absoluteUnixMs = options.AbsoluteExpirationRelativeToNow is { } relative
            ? now + (long)Math.Ceiling(relative.TotalMilliseconds)
            : options.AbsoluteExpiration?.ToUnixTimeMilliseconds() ?? 0;
        if (absoluteUnixMs != 0 && absoluteUnixMs <= now)
        {
            await _cache.RemoveAsync(key, token).ConfigureAwait(false);
            return;
        }
        var slidingMs = options.SlidingExpiration is { } sliding ? Math.Max(1, (long)Math.Ceiling(sliding.TotalMilliseconds)) : 0;
        long? ttlMs = (slidingMs, absoluteUnixMs) switch
        {
            (0, 0) => null,
            (0, _) => absoluteUnixMs - now,
            (_, 0) => slidingMs,
            _ => Math.Min(slidingMs, absoluteUnixMs - now),
        };
        var entry = new CacheEntryOptions { Ttl = ttlMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null, ExactTtl = true };
        await _cache.SetAsync(key, DistributedCacheEnvelope.Write(value, slidingMs, absoluteUnixMs), entry, token).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Refresh(string key) => RefreshAsync(key).GetAwaiter().GetResult();

    /// <inheritdoc />
    public async Task RefreshAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var (found, envelope) = await _cache.TryGetAsync<byte[]>(key, token).ConfigureAwait(false);
        if (found && DistributedCacheEnvelope.TryRead(envelope, out var slidingMs, out var absoluteUnixMs) && slidingMs > 0)
            await SlideAsync(key, slidingMs, absoluteUnixMs, token).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Remove(string key) => RemoveAsync(key).GetAwaiter().GetResult();

    /// <inheritdoc />
    public Task RemoveAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _cache.RemoveAsync(key, token);
    }

    private async Task SlideAsync(string key, long slidingMs, long absoluteUnixMs, CancellationToken token)
    {
        var now = _cache.Clock.UnixMs;
        var until = now + slidingMs;
        if (absoluteUnixMs != 0 && absoluteUnixMs < until) until = absoluteUnixMs;
        if (until <= now) return;
        var expiry = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(expiry, until);
        var breaker = _cache.Breaker;
        if (breaker.IsOpen)
        {
            // Redis is known to be down: the entry keeps its old expiry, as when the refresh fails.
            if (_cache.Options.ThrowOnRedisErrors) throw breaker.ShortCircuit(L2Cache.Component);
            breaker.CountShortCircuit(L2Cache.Component);
            RedisMetrics.RecordCacheFallback("refresh");
            return;
        }
        try
        {
            await breaker.RunAsync(Slide.EvaluateAsync(_cache.Redis.GetDatabase(), [_cache.RedisKeyOf(key)], [expiry, until - now]), token).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e) && !_cache.Options.ThrowOnRedisErrors)
        {
            RedisMetrics.RecordCacheFallback("refresh");
        }
    }
}
