using System.Buffers;
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

    private const string EntrySpace = ":e:";
    private const string TagSpace = ":t:";

    private readonly IConnectionMultiplexer _redis;
    private readonly string _keyPrefix;
    private readonly string _tagPrefix;
    private readonly ICacheSerializer _serializer;
    private readonly CacheClock _clock;
    private readonly bool _throwOnRedisErrors;
    private readonly RedisCircuitBreaker _breaker;

    public L2Cache(IConnectionMultiplexer redis, RedisTieredCacheOptions options, CacheClock clock, RedisCircuitBreaker breaker)
    {
        _breaker = breaker;
        _redis = redis;
        _keyPrefix = options.KeyPrefix + EntrySpace;
        _tagPrefix = options.KeyPrefix + TagSpace;
        _serializer = options.Serializer;
        _clock = clock;
        _throwOnRedisErrors = options.ThrowOnRedisErrors;
    }

    /// <summary>"prefix:e:" - every entry key starts with it, and no other key does.</summary>
    public string KeyPrefix => _keyPrefix;

    public string KeyOf(string key) => _keyPrefix + key;

    public string TagKeyOf(string tag) => _tagPrefix + tag;

    /// <summary>The connection's circuit breaker, shared with the other components of this connection.</summary>
    public RedisCircuitBreaker Breaker => _breaker;

    /// <summary>
    /// Reads <paramref name="key"/>; Redis being unavailable (or the circuit breaker open, then without a round trip)
    /// reads as no entry unless errors are to be thrown.
    /// </summary>
    public async Task<L2Read> ReadAsync<T>(string key, CancellationToken cancellationToken)
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
        if (lease is null) return default;
        using (lease)
            return CacheEntryFormat.Read<T>(lease.Span, _serializer, _clock.UnixMs);
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

    /// <summary>UNLINKs <paramref name="key"/>; the reply is 1 when it existed. An open circuit breaker fails it at once.</summary>
    public Task<RedisResult> UnlinkAsync(string key, CancellationToken cancellationToken) => _breaker.IsOpen
        ? Task.FromException<RedisResult>(_breaker.ShortCircuit(Component))
        : _breaker.RunAsync(_redis.GetDatabase().ExecuteAsync("UNLINK", (RedisKey)(_keyPrefix + key)), cancellationToken);

    internal const string Component = "cache";
}
