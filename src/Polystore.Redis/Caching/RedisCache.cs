using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using StackExchange.Redis;

namespace Polystore.Redis.Caching;

/// <summary>
/// Cache-aside and write-through over Redis with per-key stampede protection, TTL jitter, negative
/// caching, fail-safe, tag and prefix invalidation (SCAN + UNLINK, never KEYS) and an optional L1
/// whose invalidations reach every instance through Redis pub/sub.
/// </summary>
public sealed class RedisCache : IAsyncDisposable
{
    private const byte KindValue = 1;
    private const byte KindMissing = 2;
    private const int HeaderSize = 9; // kind + logical expiry (Unix ms)
    private const int ScanBatch = 500;

    private static readonly RedisLuaScript TagScript = new("""
        redis.call('SADD', KEYS[1], ARGV[1])
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        return 1
        """);

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisCacheOptions _options;
    private readonly string _keyPrefix;
    private readonly string _tagPrefix;
    private readonly RedisChannel _channel;
    private readonly string _instanceId = Guid.NewGuid().ToString("N");
    private readonly ConcurrentDictionary<string, Task<Loaded>> _flights = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, L1Entry> _l1 = new(StringComparer.Ordinal);
    private int _l1Count;
    private long _factoryCalls;

    private RedisCache(IConnectionMultiplexer redis, RedisCacheOptions options)
    {
        _redis = redis;
        _options = options;
        _keyPrefix = options.KeyPrefix + ":";
        _tagPrefix = options.KeyPrefix + ":__tag:";
        _channel = RedisChannel.Literal(options.KeyPrefix + ":__invalidate");
    }

    /// <summary>Creates a cache; with L1 on, it is subscribed to the invalidation channel before this returns.</summary>
    public static async Task<RedisCache> CreateAsync(IConnectionMultiplexer redis, RedisCacheOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(redis);
        var cache = new RedisCache(redis, (options ?? new RedisCacheOptions()).Validated());
        if (cache._options.UseL1)
            await redis.GetSubscriber().SubscribeAsync(cache._channel, cache.OnInvalidation).WaitAsync(cancellationToken).ConfigureAwait(false);
        return cache;
    }

    /// <summary>How many times a factory ran in this instance (for tests, demos and benchmarks).</summary>
    public long FactoryCalls => Interlocked.Read(ref _factoryCalls);

    /// <summary>
    /// Returns the cached value of <paramref name="key"/>, or runs <paramref name="factory"/> once per process
    /// however many callers miss the key at once, caches its result and hands it to all of them.
    /// The factory gets no caller's token (one caller giving up must not fail the others); each caller's
    /// own <paramref name="cancellationToken"/> only stops its wait. A null result is cached only with NegativeTtl.
    /// </summary>
    public ValueTask<T?> GetOrSetAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry = null, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        ArgumentNullException.ThrowIfNull(factory);
        L1Entry? stale = null;
        if (_options.UseL1 && _l1.TryGetValue(key, out var l1))
        {
            // Hot path: no allocation, completes synchronously.
            if (l1.FreshUntil > Environment.TickCount64) return new ValueTask<T?>(l1.Missing ? default : (T?)l1.Value);
            stale = l1;
        }
        return new ValueTask<T?>(SlowGetOrSetAsync(key, factory, entry, stale, cancellationToken));
    }

    /// <summary>Reads <paramref name="key"/> (L1, then Redis) without calling any factory.</summary>
    public async ValueTask<(bool Found, T? Value)> TryGetAsync<T>(string key, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        if (_options.UseL1 && _l1.TryGetValue(key, out var l1) && l1.FreshUntil > Environment.TickCount64)
            return (!l1.Missing, l1.Missing ? default : (T?)l1.Value);
        var read = await ReadL2Async<T>(key, cancellationToken).ConfigureAwait(false);
        return read is { Fresh: true, Missing: false } ? (true, (T?)read.Value) : (false, default);
    }

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/> in Redis (and L1), and tells other instances to drop their L1 copy.</summary>
    public async Task SetAsync<T>(string key, T value, CacheEntryOptions? entry = null, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        try
        {
            await WriteAsync(key, value, missing: value is null, entry, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisLuaScript.IsUnavailable(e) && !_options.ThrowOnRedisErrors)
        {
            Fallback("set");
            DropL1(key);
        }
    }

    /// <summary>
    /// Write-through: runs the source write first, then caches what it returned.
    /// Source write fails: nothing is cached, the key's entry is removed (best effort, as the source may have
    /// applied the write anyway) and the exception propagates.
    /// Cache set fails: the source write stands; the entry is dropped from L1 and from Redis where reachable,
    /// and the result says <c>Cached = false</c> with the error. If Redis is unreachable the old Redis value may
    /// survive until its TTL.
    /// </summary>
    public async Task<WriteThroughResult<T>> WriteThroughAsync<T>(string key, Func<CancellationToken, Task<T>> sourceWrite, CacheEntryOptions? entry = null, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        ArgumentNullException.ThrowIfNull(sourceWrite);
        T value;
        try
        {
            value = await sourceWrite(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await TryRemoveQuietlyAsync(key).ConfigureAwait(false);
            throw;
        }
        try
        {
            await WriteAsync(key, value, missing: value is null, entry, cancellationToken).ConfigureAwait(false);
            return new WriteThroughResult<T>(value, true, null);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await TryRemoveQuietlyAsync(key).ConfigureAwait(false);
            return new WriteThroughResult<T>(value, false, e);
        }
    }

    /// <summary>Removes one key everywhere (Redis, this L1, other instances' L1).</summary>
    public async Task<bool> RemoveAsync(string key, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        DropL1(key);
        var db = _redis.GetDatabase();
        var removed = (long)await db.ExecuteAsync("UNLINK", (RedisKey)(_keyPrefix + key)).WaitAsync(cancellationToken).ConfigureAwait(false) == 1;
        await PublishAsync('k', key).ConfigureAwait(false);
        return removed;
    }

    /// <summary>Removes every key starting with <paramref name="keyPrefix"/>: SCAN on every primary, UNLINK in batches.</summary>
    public async Task<long> RemoveByPrefixAsync(string keyPrefix, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keyPrefix);
        var removed = await ScanAndUnlinkAsync(EscapeGlob(_keyPrefix + keyPrefix) + "*", cancellationToken).ConfigureAwait(false);
        foreach (var k in _l1.Keys)
            if (k.StartsWith(keyPrefix, StringComparison.Ordinal)) DropL1(k);
        await PublishAsync('p', keyPrefix).ConfigureAwait(false);
        return removed;
    }

    /// <summary>Removes every key matching the Redis glob <paramref name="pattern"/> (relative to the cache prefix). L1 copies are cleared entirely.</summary>
    public async Task<long> RemoveByPatternAsync(string pattern, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(pattern, nameof(pattern));
        var removed = await ScanAndUnlinkAsync(EscapeGlob(_keyPrefix) + pattern, cancellationToken).ConfigureAwait(false);
        ClearL1();
        await PublishAsync('a', "").ConfigureAwait(false);
        return removed;
    }

    /// <summary>Removes every entry stored with <paramref name="tag"/> (the tag set is read with SSCAN and unlinked in batches).</summary>
    public async Task<long> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(tag, nameof(tag));
        var db = _redis.GetDatabase();
        RedisKey tagKey = _tagPrefix + tag;
        var batch = new List<RedisKey>(ScanBatch);
        long removed = 0;
        await foreach (var member in db.SetScanAsync(tagKey, pageSize: ScanBatch).WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            batch.Add((RedisKey)(byte[])member!);
            if (batch.Count == ScanBatch)
            {
                removed += await UnlinkAsync(db, batch).ConfigureAwait(false);
                batch.Clear();
            }
        }
        removed += await UnlinkAsync(db, batch).ConfigureAwait(false);
        await db.ExecuteAsync("UNLINK", tagKey).ConfigureAwait(false);
        foreach (var (k, e) in _l1)
            if (e.Tags is { } tags && Array.IndexOf(tags, tag) >= 0) DropL1(k);
        await PublishAsync('t', tag).ConfigureAwait(false);
        return removed;
    }

    /// <summary>Unsubscribes from the invalidation channel.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_options.UseL1)
        {
            try
            {
                await _redis.GetSubscriber().UnsubscribeAsync(_channel, OnInvalidation).ConfigureAwait(false);
            }
            catch (Exception e) when (RedisLuaScript.IsUnavailable(e))
            {
            }
        }
        ClearL1();
    }

    // ------------------------------------------------------------------ read path

    private async Task<T?> SlowGetOrSetAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry, L1Entry? stale, CancellationToken cancellationToken)
    {
        Task<Loaded> flight;
        while (!_flights.TryGetValue(key, out flight!))
        {
            var tcs = new TaskCompletionSource<Loaded>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_flights.TryAdd(key, tcs.Task)) continue;
            flight = tcs.Task;
            _ = RunFlightAsync(key, factory, entry, stale, tcs);
            break;
        }
        var loaded = await flight.WaitAsync(cancellationToken).ConfigureAwait(false);
        return loaded.Missing ? default : (T?)loaded.Value;
    }

    private async Task RunFlightAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry, L1Entry? staleL1, TaskCompletionSource<Loaded> tcs)
    {
        try
        {
            var result = await LoadAsync(key, factory, entry, staleL1).ConfigureAwait(false);
            _flights.TryRemove(new KeyValuePair<string, Task<Loaded>>(key, tcs.Task));
            tcs.SetResult(result);
        }
        catch (Exception e)
        {
            _flights.TryRemove(new KeyValuePair<string, Task<Loaded>>(key, tcs.Task));
            tcs.SetException(e);
        }
    }

    private async Task<Loaded> LoadAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry, L1Entry? staleL1)
    {
        // Inside the flight the key is read again from Redis: a caller that arrives after an earlier flight
        // finished finds the value there instead of running the factory a second time.
        var read = await ReadL2Async<T>(key, CancellationToken.None).ConfigureAwait(false);
        if (read.Fresh)
        {
            SetL1(key, read.Value, read.Missing, read.LogicalExpiry, entry?.Tags);
            return new Loaded(read.Value, read.Missing);
        }
        T? value;
        try
        {
            Interlocked.Increment(ref _factoryCalls);
            value = await factory(CancellationToken.None).ConfigureAwait(false);
        }
        catch when (_options.FailSafe && (read.Stale || staleL1 is not null))
        {
            // Fail-safe: the source failed, serve the last known value (Redis copy first, else L1 copy).
            RedisMetrics.CacheFallbackCounter.Add(1, new KeyValuePair<string, object?>("operation", "fail-safe"));
            return read.Stale ? new Loaded(read.Value, read.Missing) : new Loaded(staleL1!.Value, staleL1.Missing);
        }
        var missing = value is null;
        if (!missing || _options.NegativeTtl is not null)
        {
            try
            {
                // A fill after a miss broadcasts nothing: no other instance can hold a fresher L1 copy of a key
                // that Redis did not have, and a broadcast racing with their own fill would only cost them a miss.
                await WriteAsync(key, value, missing, entry, CancellationToken.None, broadcast: false).ConfigureAwait(false);
            }
            catch (Exception e) when (RedisLuaScript.IsUnavailable(e) && !_options.ThrowOnRedisErrors)
            {
                Fallback("set");
                SetL1(key, value, missing, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + (long)Ttl(entry, missing).TotalMilliseconds, entry?.Tags);
            }
        }
        return new Loaded(value, missing);
    }

    private async Task<L2Read> ReadL2Async<T>(string key, CancellationToken cancellationToken)
    {
        Lease<byte>? lease;
        try
        {
            lease = await _redis.GetDatabase().StringGetLeaseAsync(_keyPrefix + key).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisLuaScript.IsUnavailable(e) && !_options.ThrowOnRedisErrors)
        {
            Fallback("get");
            return default;
        }
        if (lease is null) return default;
        using (lease)
        {
            var span = lease.Span;
            if (span.Length < HeaderSize || (span[0] != KindValue && span[0] != KindMissing)) return default;
            var logicalExpiry = BinaryPrimitives.ReadInt64LittleEndian(span[1..]);
            var missing = span[0] == KindMissing;
            object? value = missing ? null : _options.Serializer.Deserialize<T>(span[HeaderSize..]);
            var fresh = logicalExpiry > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            return new L2Read(value, missing, fresh, !fresh, logicalExpiry);
        }
    }

    // ------------------------------------------------------------------ write path

    private async Task WriteAsync<T>(string key, T? value, bool missing, CacheEntryOptions? entry, CancellationToken cancellationToken, bool broadcast = true)
    {
        var ttl = Ttl(entry, missing);
        var logicalExpiry = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + (long)ttl.TotalMilliseconds;
        var physical = _options.FailSafe ? ttl + _options.FailSafeMaxAge : ttl;
        var buffer = new ArrayBufferWriter<byte>(256);
        var header = buffer.GetSpan(HeaderSize);
        header[0] = missing ? KindMissing : KindValue;
        BinaryPrimitives.WriteInt64LittleEndian(header[1..], logicalExpiry);
        buffer.Advance(HeaderSize);
        if (!missing) _options.Serializer.Serialize(value, buffer);
        var db = _redis.GetDatabase();
        RedisKey redisKey = _keyPrefix + key;
        var set = db.StringSetAsync(redisKey, buffer.WrittenMemory, physical);
        if (entry?.Tags is { Count: > 0 } tags)
        {
            var tagTasks = new Task[tags.Count + 1];
            tagTasks[0] = set;
            var ms = (long)Math.Ceiling(physical.TotalMilliseconds);
            for (var i = 0; i < tags.Count; i++)
                tagTasks[i + 1] = TagScript.EvaluateAsync(db, [_tagPrefix + tags[i]], [(byte[])redisKey!, ms]);
            await Task.WhenAll(tagTasks).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await set.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        SetL1(key, value, missing, logicalExpiry, entry?.Tags);
        if (broadcast) await PublishAsync('k', key).ConfigureAwait(false);
    }

    private TimeSpan Ttl(CacheEntryOptions? entry, bool missing)
    {
        var ttl = missing && _options.NegativeTtl is { } negative ? negative : entry?.Ttl ?? _options.DefaultTtl;
        if (ttl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(entry), ttl, "the entry TTL must be positive.");
        // Jitter spreads the expiry of entries written together, so they are not all refetched at once.
        return _options.JitterFraction == 0 ? ttl : ttl + (ttl * (Random.Shared.NextDouble() * _options.JitterFraction));
    }

    private async Task<long> ScanAndUnlinkAsync(string pattern, CancellationToken cancellationToken)
    {
        var db = _redis.GetDatabase();
        long removed = 0;
        // In a cluster every primary holds a share of the keyspace, so each one is scanned.
        foreach (var server in _redis.GetServers())
        {
            if (server.IsReplica || !server.IsConnected) continue;
            var batch = new List<RedisKey>(ScanBatch);
            // KeysAsync pages with SCAN (never KEYS) on every Redis since 2.8.
            await foreach (var key in server.KeysAsync(db.Database, pattern, ScanBatch).WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                batch.Add(key);
                if (batch.Count == ScanBatch)
                {
                    removed += await UnlinkAsync(db, batch).ConfigureAwait(false);
                    batch.Clear();
                }
            }
            removed += await UnlinkAsync(db, batch).ConfigureAwait(false);
        }
        return removed;
    }

    private async Task<long> UnlinkAsync(IDatabaseAsync db, List<RedisKey> keys)
    {
        if (keys.Count == 0) return 0;
        // Multi-key UNLINK must stay inside one slot in a cluster: group the batch by slot.
        var groups = _redis.GetServers().Any(s => s.ServerType == ServerType.Cluster)
            ? keys.GroupBy(k => _redis.HashSlot(k)).Select(g => g.Cast<object>().ToArray())
            : [keys.Cast<object>().ToArray()];
        var tasks = groups.Select(g => db.ExecuteAsync("UNLINK", g)).ToArray();
        await Task.WhenAll(tasks).ConfigureAwait(false);
        return tasks.Sum(t => (long)t.Result);
    }

    private async Task TryRemoveQuietlyAsync(string key)
    {
        DropL1(key);
        try
        {
            await RemoveAsync(key).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisLuaScript.IsUnavailable(e))
        {
            Fallback("remove");
        }
    }

    // ------------------------------------------------------------------ L1 and invalidation broadcast

    private void SetL1(string key, object? value, bool missing, long logicalExpiryUnixMs, IReadOnlyList<string>? tags)
    {
        if (!_options.UseL1) return;
        var left = logicalExpiryUnixMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var freshFor = Math.Min(left, (long)_options.L1Ttl.TotalMilliseconds);
        if (freshFor <= 0 && !_options.FailSafe) return;
        var e = new L1Entry(value, missing, Environment.TickCount64 + freshFor, tags?.ToArray());
        if (_l1.TryAdd(key, e))
        {
            if (Interlocked.Increment(ref _l1Count) > _options.L1MaxEntries) TrimL1();
        }
        else
        {
            _l1[key] = e;
        }
    }

    private void DropL1(string key)
    {
        if (_l1.TryRemove(key, out _)) Interlocked.Decrement(ref _l1Count);
    }

    private void ClearL1()
    {
        foreach (var k in _l1.Keys) DropL1(k);
    }

    private void TrimL1()
    {
        var now = Environment.TickCount64;
        foreach (var (k, e) in _l1)
            if (e.FreshUntil <= now) DropL1(k);
        // Still full: drop about a tenth, in no particular order (cheap, bounded memory; not LRU).
        var excess = Volatile.Read(ref _l1Count) - (_options.L1MaxEntries * 9 / 10);
        foreach (var k in _l1.Keys)
        {
            if (excess-- <= 0) break;
            DropL1(k);
        }
    }

    private async Task PublishAsync(char kind, string value)
    {
        if (!_options.UseL1) return;
        var message = string.Concat(_instanceId, "|", kind.ToString(), "|", value);
        try
        {
            await _redis.GetSubscriber().PublishAsync(_channel, message).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisLuaScript.IsUnavailable(e))
        {
            // Other instances' L1 copies then expire by L1Ttl.
            Fallback("publish");
        }
    }

    private void OnInvalidation(RedisChannel channel, RedisValue message)
    {
        var text = (string?)message;
        if (text is null) return;
        var parts = text.Split('|', 3);
        if (parts.Length != 3 || parts[0] == _instanceId) return; // our own change was applied locally already
        var value = parts[2];
        switch (parts[1])
        {
            case "k":
                DropL1(value);
                break;
            case "p":
                foreach (var k in _l1.Keys)
                    if (k.StartsWith(value, StringComparison.Ordinal)) DropL1(k);
                break;
            case "t":
                foreach (var (k, e) in _l1)
                    if (e.Tags is { } tags && Array.IndexOf(tags, value) >= 0) DropL1(k);
                break;
            default:
                ClearL1();
                break;
        }
    }

    private static void Fallback(string operation) =>
        RedisMetrics.CacheFallbackCounter.Add(1, new KeyValuePair<string, object?>("operation", operation));

    private static string EscapeGlob(string literal)
    {
        var sb = new StringBuilder(literal.Length + 8);
        foreach (var c in literal)
        {
            if (c is '*' or '?' or '[' or ']' or '\\') sb.Append('\\');
            sb.Append(c);
        }
        return sb.ToString();
    }

    internal string RedisKeyOf(string key) => _keyPrefix + key;

    internal string TagKeyOf(string tag) => _tagPrefix + tag;

    internal int L1Count => _l1.Count;


    private sealed record L1Entry(object? Value, bool Missing, long FreshUntil, string[]? Tags);

    private sealed record Loaded(object? Value, bool Missing);

    private readonly record struct L2Read(object? Value, bool Missing, bool Fresh, bool Stale, long LogicalExpiry);
}
