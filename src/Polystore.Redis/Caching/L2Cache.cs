using System.Buffers;
using System.Security.Cryptography;
using StackExchange.Redis;

namespace Polystore.Redis.Caching;

/// <summary>
/// The Redis layer (L2) of <see cref="RedisTieredCache"/>: entries at <c>prefix:e:key</c> in
/// <see cref="CacheEntryFormat"/>, and one set per tag at <c>prefix:t:tag</c> listing the keys stored with
/// it. A tag set lives at least as long as the longest entry added to it.
/// </summary>
/// <remarks>
/// Entries and tag sets live in separate key spaces: whatever a caller's key or tag is, an entry key and a tag
/// key differ in the character after the prefix, so no key can overwrite a tag set or the other way round, and
/// prefix or pattern removal (which only matches below <c>prefix:e:</c>) never reaches a tag set.
/// </remarks>
internal sealed class L2Cache
{
    private static readonly RedisScript TagScript = new("""
        redis.call('SADD', KEYS[1], ARGV[1])
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        return 1
        """);

    // A key an entry was never written to, or whose entry expired, reads as absent ("").
    private static readonly RedisScript FillScript = new("""
        local current = redis.call('GET', KEYS[1])
        if (current and redis.sha1hex(current) or '') ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return 1
        """);

    // Counts the keys that held an entry (kind 1 or 2), not those holding a tombstone already or nothing.
    private static readonly RedisScript RemoveScript = new("""
        local held = 0
        for _, key in ipairs(KEYS) do
          local kind = redis.call('GETRANGE', key, 0, 0)
          if kind == '\1' or kind == '\2' then held = held + 1 end
          redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
        end
        return held
        """);

    private const string EntrySpace = ":e:";
    private const string TagSpace = ":t:";

    private readonly IConnectionMultiplexer _redis;
    private readonly string _keyPrefix;
    private readonly string _tagPrefix;
    private readonly ICacheSerializer _serializer;
    private readonly CacheClock _clock;
    private readonly bool _throwOnRedisErrors;
    private readonly RedisCircuitBreaker _breaker;
    private readonly long _tombstoneTtlMs;

    public L2Cache(IConnectionMultiplexer redis, RedisTieredCacheOptions options, CacheClock clock, RedisCircuitBreaker breaker)
    {
        _breaker = breaker;
        _redis = redis;
        _keyPrefix = options.KeyPrefix + EntrySpace;
        _tagPrefix = options.KeyPrefix + TagSpace;
        _serializer = options.Serializer;
        _clock = clock;
        _throwOnRedisErrors = options.ThrowOnRedisErrors;
        _tombstoneTtlMs = (long)Math.Ceiling(options.TombstoneTtl.TotalMilliseconds);
    }

    /// <summary>"prefix:e:" - every entry key starts with it, and no other key does.</summary>
    public string KeyPrefix => _keyPrefix;

    public string KeyOf(string key) => _keyPrefix + key;

    public string TagKeyOf(string tag) => _tagPrefix + tag;

    /// <summary>The connection's circuit breaker, shared with the other components of this connection.</summary>
    public RedisCircuitBreaker Breaker => _breaker;

    /// <summary>
    /// Reads <paramref name="key"/>; Redis being unavailable (or the circuit breaker open, then without a round trip)
    /// reads as no entry unless errors are to be thrown. With <paramref name="forFill"/>, a read that finds no fresh
    /// entry says what the key held (<see cref="L2Read.Seen"/>), for <see cref="FillAsync{T}"/>.
    /// </summary>
    public async Task<L2Read> ReadAsync<T>(string key, CancellationToken cancellationToken, bool forFill = false)
    {
        if (_breaker.IsOpen)
        {
            if (_throwOnRedisErrors) throw _breaker.ShortCircuit(Component);
            _breaker.CountShortCircuit(Component);
            RedisMetrics.RecordCacheFallback("get");
            return default;
        }
        Lease<byte>? lease;
        try
        {
            lease = await _breaker.RunAsync(_redis.GetDatabase().StringGetLeaseAsync(_keyPrefix + key), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e) && !_throwOnRedisErrors)
        {
            RedisMetrics.RecordCacheFallback("get");
            return default;
        }
        if (lease is null) return forFill ? default(L2Read) with { Seen = "" } : default;
        using (lease)
        {
            var read = CacheEntryFormat.Read<T>(lease.Span, _serializer, _clock.UnixMs);
            // Hashed only on the way to the factory: a hit pays nothing for it.
            return forFill && !read.Fresh ? read with { Seen = Convert.ToHexStringLower(SHA1.HashData(lease.Span)) } : read;
        }
    }

    /// <summary>
    /// Stores the entry with Redis TTL <paramref name="physicalTtl"/> and adds its key to each tag's set. A
    /// serializer failure throws before anything is sent; an open circuit breaker fails the task at once (nothing sent).
    /// </summary>
    public Task WriteAsync<T>(string key, T? value, bool missing, long logicalExpiryUnixMs, TimeSpan physicalTtl, IReadOnlyList<string>? tags, CancellationToken cancellationToken)
    {
        if (_breaker.IsOpen) return Task.FromException(_breaker.ShortCircuit(Component));
        var buffer = new ArrayBufferWriter<byte>(256);
        CacheEntryFormat.Write(buffer, value, missing, logicalExpiryUnixMs, _serializer);
        var db = _redis.GetDatabase();
        RedisKey redisKey = _keyPrefix + key;
        var set = db.StringSetAsync(redisKey, buffer.WrittenMemory, physicalTtl);
        if (tags is not { Count: > 0 }) return _breaker.RunAsync(set, cancellationToken);
        var all = new Task[tags.Count + 1];
        all[0] = set;
        var ms = (long)Math.Ceiling(physicalTtl.TotalMilliseconds);
        for (var i = 0; i < tags.Count; i++)
            all[i + 1] = TagScript.EvaluateAsync(db, [_tagPrefix + tags[i]], [(byte[])redisKey!, ms]);
        return _breaker.RunAsync(Task.WhenAll(all), cancellationToken);
    }

    /// <summary>
    /// Stores a factory's result only if the key still holds what the read before the factory saw
    /// (<paramref name="seen"/>, see <see cref="L2Read.Seen"/>): a write or removal since then (a removal leaves a
    /// tombstone) means the factory may have read the source before that change, and its result is not stored.
    /// Tags are added either way (a tag set listing a key it does not hold costs nothing). True when stored.
    /// </summary>
    public async Task<bool> FillAsync<T>(string key, T? value, bool missing, long logicalExpiryUnixMs, TimeSpan physicalTtl, IReadOnlyList<string>? tags, string seen)
    {
        if (_breaker.IsOpen) throw _breaker.ShortCircuit(Component);
        var buffer = new ArrayBufferWriter<byte>(256);
        CacheEntryFormat.Write(buffer, value, missing, logicalExpiryUnixMs, _serializer);
        var db = _redis.GetDatabase();
        RedisKey redisKey = _keyPrefix + key;
        var ms = (long)Math.Ceiling(physicalTtl.TotalMilliseconds);
        var fill = FillScript.EvaluateAsync(db, [redisKey], [seen, buffer.WrittenMemory, ms]);
        if (tags is { Count: > 0 })
        {
            var all = new Task[tags.Count + 1];
            all[0] = fill;
            for (var i = 0; i < tags.Count; i++)
                all[i + 1] = TagScript.EvaluateAsync(db, [_tagPrefix + tags[i]], [(byte[])redisKey!, ms]);
            await _breaker.RunAsync(Task.WhenAll(all)).ConfigureAwait(false);
            return (long)fill.Result == 1;
        }
        return (long)await _breaker.RunAsync(fill).ConfigureAwait(false) == 1;
    }

    /// <summary>
    /// Replaces <paramref name="key"/> with a tombstone that lives <see cref="RedisTieredCacheOptions.TombstoneTtl"/>
    /// (see <see cref="FillAsync{T}"/>); the reply is 1 when the key held an entry. An open circuit breaker fails it at once.
    /// </summary>
    public Task<RedisResult> RemoveAsync(string key) => _breaker.IsOpen
        ? Task.FromException<RedisResult>(_breaker.ShortCircuit(Component))
        : _breaker.RunAsync(RemoveScript.EvaluateAsync(_redis.GetDatabase(), [(RedisKey)(_keyPrefix + key)], [CacheEntryFormat.Tombstone(), _tombstoneTtlMs]));

    /// <summary>
    /// Replaces each of <paramref name="keys"/> (all in one hash slot in a cluster) with a tombstone; returns how
    /// many held an entry.
    /// </summary>
    public Task<RedisResult> RemoveAsync(IDatabaseAsync db, RedisKey[] keys, byte[] tombstone) =>
        RemoveScript.EvaluateAsync(db, keys, [tombstone, _tombstoneTtlMs]);

    internal const string Component = "cache";
}
