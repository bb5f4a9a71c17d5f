using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polystore.Redis.Caching;

/// <summary>
/// Cache-aside and write-through over Redis (L2) with an optional in-process L1: per-key stampede protection,
/// TTL jitter, negative caching, fail-safe, tag and prefix invalidation (SCAN, never KEYS), fills that do not cache
/// what a factory read before a concurrent write or removal of its key, and L1 invalidations that reach every
/// instance through Redis pub/sub.
/// </summary>
/// <remarks>
/// While the connection's circuit breaker is open (see <see cref="RedisTieredCacheOptions.CircuitBreaker"/>) nothing
/// waits on Redis: reads miss it, fills keep their value in L1 only, and fail-safe serves L1 copies, each counted in
/// <see cref="RedisMetrics.CacheFallbacks"/>; with <see cref="RedisTieredCacheOptions.ThrowOnRedisErrors"/> they throw
/// a <see cref="RedisConnectionException"/> that says the breaker is open. Removals throw it either way.
/// </remarks>
public sealed class RedisTieredCache : IRedisTieredCache, IAsyncDisposable
{
    // This class decides what each call does (including when Redis is unavailable); the parts do the work.
    private readonly RedisTieredCacheOptions _options;
    private readonly CacheClock _clock;
    private readonly L1Cache? _l1;
    private readonly L2Cache _l2;
    private readonly CacheFlights _flights = new();
    private readonly CacheInvalidationChannel? _invalidation;
    private readonly InvalidationSubscription? _subscription;
    private readonly CacheKeyRemover _remover;
    private readonly long _tombstoneTtlMs;
    private long _factoryCalls;

    /// <summary>
    /// Creates a cache without waiting on Redis (as dependency injection does); with L1 on, it subscribes to the
    /// invalidation channel on first use, and its L1 copies count from the moment Redis confirms that.
    /// </summary>
    /// <param name="redis">The application's connection.</param>
    /// <param name="options">The cache options; null = the defaults.</param>
    /// <param name="loggerFactory">Where the connection's circuit breaker logs its state changes; null = nowhere.</param>
    public RedisTieredCache(IConnectionMultiplexer redis, RedisTieredCacheOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        options = (options ?? new RedisTieredCacheOptions()).Validated();
        Redis = redis;
        _options = options;
        _clock = new CacheClock(options.TimeProvider);
        _tombstoneTtlMs = (long)options.TombstoneTtl.TotalMilliseconds;
        var breaker = RedisCircuitBreaker.For(redis, options.CircuitBreaker, loggerFactory);
        _l2 = new L2Cache(redis, options, _clock, breaker);
        _remover = new CacheKeyRemover(redis, _l2);
        if (options.UseL1)
        {
            _l1 = new L1Cache(options, _clock);
            _invalidation = new CacheInvalidationChannel(redis, options.KeyPrefix, _l1, breaker);
            _subscription = new InvalidationSubscription(_invalidation, _l1);
        }
    }

    /// <summary>Creates a cache; with L1 on, it is subscribed to the invalidation channel before this returns.</summary>
    public static Task<RedisTieredCache> CreateAsync(IConnectionMultiplexer redis, RedisTieredCacheOptions? options = null, CancellationToken cancellationToken = default) =>
        CreateAsync(redis, options, null, cancellationToken);

    /// <summary>Creates a cache whose connection's circuit breaker logs its state changes to <paramref name="loggerFactory"/>.</summary>
    /// <param name="redis">The application's connection.</param>
    /// <param name="options">The cache options; null = the defaults.</param>
    /// <param name="loggerFactory">Where the circuit breaker logs; null = nowhere.</param>
    /// <param name="cancellationToken">Stops the wait for the invalidation channel's subscription.</param>
    /// <exception cref="RedisConnectionException">Redis is unavailable or its circuit breaker is open (construct the cache instead, to subscribe on first use).</exception>
    public static async Task<RedisTieredCache> CreateAsync(IConnectionMultiplexer redis, RedisTieredCacheOptions? options, ILoggerFactory? loggerFactory, CancellationToken cancellationToken = default)
    {
        var cache = new RedisTieredCache(redis, options, loggerFactory);
        if (cache._subscription is not null) await cache._subscription.EnsureAsync(cancellationToken).ConfigureAwait(false);
        return cache;
    }

    /// <summary>How many times a factory ran in this instance (for tests, demos and benchmarks).</summary>
    public long FactoryCalls => Interlocked.Read(ref _factoryCalls);

    /// <summary>
    /// Returns the cached value of <paramref name="key"/>, or runs <paramref name="factory"/> once per process
    /// however many callers miss the key at once, caches its result and hands it to all of them.
    /// The factory gets no caller's token (one caller giving up must not fail the others); each caller's
    /// own <paramref name="cancellationToken"/> only stops its wait, and the factory's result is still cached.
    /// A factory that throws (<see cref="OperationCanceledException"/> included) caches nothing, and every caller
    /// waiting on that run gets its exception, unless fail-safe serves the last value.
    /// A null result is cached only with <see cref="RedisTieredCacheOptions.NegativeTtl"/>.
    /// </summary>
    public ValueTask<T?> GetOrSetAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry = null, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        ArgumentNullException.ThrowIfNull(factory);
        L1Entry? stale = null;
        if (_l1 is not null && _l1.TryGet(key, out var l1))
        {
            // Hot path: no allocation, completes synchronously.
            if (l1.FreshUntil > _l1.Now)
            {
                if (CacheTelemetry.Observed) CacheTelemetry.L1Hit(_options.KeyPrefix);
                return new ValueTask<T?>(l1.Missing ? default : (T?)l1.Value);
            }
            if (l1.StaleUntil > _l1.Now) stale = l1;
        }
        return new ValueTask<T?>(SlowGetOrSetAsync(key, factory, entry, stale, cancellationToken));
    }

    /// <summary>Reads <paramref name="key"/> (L1, then Redis) without calling any factory.</summary>
    public async ValueTask<(bool Found, T? Value)> TryGetAsync<T>(string key, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        if (_l1 is not null && _l1.TryGet(key, out var l1) && l1.FreshUntil > _l1.Now)
        {
            if (CacheTelemetry.Observed) CacheTelemetry.L1Hit(_options.KeyPrefix);
            return (!l1.Missing, l1.Missing ? default : (T?)l1.Value);
        }
        using var activity = RedisTelemetry.Start("cache_get", _options.KeyPrefix);
        L2Read read;
        try
        {
            read = await _l2.ReadAsync<T>(key, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            RedisTelemetry.Fail(activity, e);
            throw;
        }
        CacheTelemetry.Served(activity, _options.KeyPrefix, _l1 is not null, read.Fresh ? CacheTelemetry.L2 : CacheTelemetry.None, merged: false);
        return read is { Fresh: true, Missing: false } ? (true, (T?)read.Value) : (false, default);
    }

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/> in Redis (and L1), and tells other instances to drop their L1 copy.</summary>
    public async Task SetAsync<T>(string key, T value, CacheEntryOptions? entry = null, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        using var activity = RedisTelemetry.Start("cache_set", _options.KeyPrefix);
        try
        {
            await WriteAsync(key, value, missing: value is null, entry, cancellationToken).ConfigureAwait(false);
            activity?.SetTag("polystore.cache.stored", true);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e) && !_options.ThrowOnRedisErrors)
        {
            RedisMetrics.RecordCacheFallback("set");
            _l1?.Drop(key);
            activity?.SetTag("polystore.cache.stored", false);
        }
        catch (Exception e)
        {
            RedisTelemetry.Fail(activity, e);
            throw;
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
        using var activity = RedisTelemetry.Start("cache_set", _options.KeyPrefix);
        activity?.SetTag("polystore.cache.write_through", true);
        T value;
        try
        {
            value = await sourceWrite(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            RedisTelemetry.Fail(activity, e);
            await TryRemoveQuietlyAsync(key).ConfigureAwait(false);
            throw;
        }
        try
        {
            // The source has changed: the cache follows it even if the caller gives up now (a cancelled cache write
            // would leave every copy on the old value).
            await WriteAsync(key, value, missing: value is null, entry, CancellationToken.None).ConfigureAwait(false);
            activity?.SetTag("polystore.cache.stored", true);
            return new WriteThroughResult<T>(value, true, null);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            activity?.SetTag("polystore.cache.stored", false);
            await TryRemoveQuietlyAsync(key).ConfigureAwait(false);
            return new WriteThroughResult<T>(value, false, e);
        }
    }

    /// <summary>
    /// Removes one key everywhere (Redis, this L1, other instances' L1), leaving a tombstone in Redis for
    /// <see cref="RedisTieredCacheOptions.TombstoneTtl"/> so that a factory running meanwhile does not store what it
    /// read. The token is looked at before anything is sent: once the removal has gone to Redis it is finished
    /// everywhere (within the operation timeout). True when the key held an entry.
    /// </summary>
    public async Task<bool> RemoveAsync(string key, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(key, nameof(key));
        cancellationToken.ThrowIfCancellationRequested();
        _l1?.Drop(key);
        var removed = (long)await _l2.RemoveAsync(key).ConfigureAwait(false) == 1;
        if (_invalidation is not null) await _invalidation.PublishKeyAsync(key).ConfigureAwait(false);
        return removed;
    }

    /// <summary>
    /// Removes every entry whose key starts with <paramref name="keyPrefix"/>: SCAN on every primary, tombstones in
    /// batches. A factory that found its key absent and runs meanwhile may still store its result (no key to mark).
    /// </summary>
    public async Task<long> RemoveByPrefixAsync(string keyPrefix, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keyPrefix);
        var removed = await _remover.RemoveMatchingAsync(CacheKeyRemover.EscapeGlob(_l2.KeyPrefix + keyPrefix) + "*", cancellationToken).ConfigureAwait(false);
        _l1?.DropPrefix(keyPrefix);
        if (_invalidation is not null) await _invalidation.PublishPrefixAsync(keyPrefix).ConfigureAwait(false);
        return removed;
    }

    /// <summary>
    /// Removes every entry whose key matches the Redis glob <paramref name="pattern"/> (matched against the keys
    /// as given to this cache; tag sets are never matched). L1 copies are cleared entirely.
    /// </summary>
    public async Task<long> RemoveByPatternAsync(string pattern, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(pattern, nameof(pattern));
        var removed = await _remover.RemoveMatchingAsync(CacheKeyRemover.EscapeGlob(_l2.KeyPrefix) + pattern, cancellationToken).ConfigureAwait(false);
        _l1?.Clear();
        if (_invalidation is not null) await _invalidation.PublishAllAsync().ConfigureAwait(false);
        return removed;
    }

    /// <summary>Removes every entry stored with <paramref name="tag"/> (the tag set is read with SSCAN, its entries replaced by tombstones in batches).</summary>
    public async Task<long> RemoveByTagAsync(string tag, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(tag, nameof(tag));
        var removed = await _remover.RemoveTaggedAsync(_l2.TagKeyOf(tag), cancellationToken).ConfigureAwait(false);
        _l1?.DropTagged(tag);
        if (_invalidation is not null) await _invalidation.PublishTagAsync(tag).ConfigureAwait(false);
        return removed;
    }

    /// <summary>Unsubscribes from the invalidation channel and drops the L1 copies.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_invalidation is not null) await _invalidation.UnsubscribeAsync().ConfigureAwait(false);
        _l1?.Clear();
    }

    internal string RedisKeyOf(string key) => _l2.KeyOf(key);

    // For the adapters in this assembly (RedisDistributedCache).
    internal IConnectionMultiplexer Redis { get; }

    internal RedisTieredCacheOptions Options => _options;

    internal CacheClock Clock => _clock;

    /// <summary>The connection's circuit breaker: adapters that call Redis themselves check it and run their calls through it.</summary>
    internal RedisCircuitBreaker Breaker => _l2.Breaker;

    internal string TagKeyOf(string tag) => _l2.TagKeyOf(tag);

    private async Task<T?> SlowGetOrSetAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry, L1Entry? stale, CancellationToken cancellationToken)
    {
        _subscription?.Ensure();
        // The load runs under the span of the caller that started it, so the factory's own spans nest there.
        using var activity = RedisTelemetry.Start("cache_get", _options.KeyPrefix);
        var flight = _flights.Join(key, out var started);
        if (started is not null) _ = RunFlightAsync(key, factory, entry, stale, started);
        CachedValue loaded;
        try
        {
            loaded = await flight.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            RedisTelemetry.Fail(activity, e);
            throw;
        }
        CacheTelemetry.Served(activity, _options.KeyPrefix, _l1 is not null, loaded.Level, merged: started is null);
        return loaded.Missing ? default : (T?)loaded.Value;
    }

    private async Task RunFlightAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry, L1Entry? staleL1, TaskCompletionSource<CachedValue> flight)
    {
        try
        {
            var result = await LoadAsync(key, factory, entry, staleL1).ConfigureAwait(false);
            _flights.Complete(key, flight, result);
        }
        catch (Exception e)
        {
            _flights.Fail(key, flight, e);
        }
    }

    private async Task<CachedValue> LoadAsync<T>(string key, Func<CancellationToken, Task<T?>> factory, CacheEntryOptions? entry, L1Entry? staleL1)
    {
        // Inside the flight the key is read again from Redis: a caller that arrives after an earlier flight
        // finished finds the value there instead of running the factory a second time.
        var readAt = _clock.TickMs;
        var invalidations = _l1?.Invalidations ?? 0;
        var read = await _l2.ReadAsync<T>(key, CancellationToken.None, forFill: true).ConfigureAwait(false);
        if (read.Fresh)
        {
            _l1?.SetUnlessInvalidated(invalidations, key, read.Value, read.Missing, read.LogicalExpiry, entry?.Tags);
            return new CachedValue(read.Value, read.Missing);
        }
        T? value;
        try
        {
            Interlocked.Increment(ref _factoryCalls);
            CacheTelemetry.FactoryCalled(_options.KeyPrefix);
            value = await factory(CancellationToken.None).ConfigureAwait(false);
        }
        catch when (_options.FailSafe && (read.Stale || staleL1 is not null))
        {
            // Fail-safe: the source failed, serve the last known value (Redis copy first, else L1 copy).
            RedisMetrics.RecordCacheFallback("fail-safe");
            return read.Stale ? new CachedValue(read.Value, read.Missing, CacheTelemetry.Stale) : new CachedValue(staleL1!.Value, staleL1.Missing, CacheTelemetry.Stale);
        }
        var missing = value is null;
        if (!missing || _options.NegativeTtl is not null) await FillAsync(key, value, missing, entry, read.Seen, readAt, invalidations).ConfigureAwait(false);
        return new CachedValue(value, missing, CacheTelemetry.Factory);
    }

    /// <summary>
    /// Stores a factory's result where no write or removal of its key came between the read before the factory and
    /// now (see <see cref="L2Cache.FillAsync{T}"/>), or in L1 alone when Redis is away. A fill broadcasts nothing: no
    /// other instance can hold a fresher L1 copy of a key that Redis did not have, and a broadcast racing with their own
    /// fill would only cost them a miss.
    /// </summary>
    private async Task FillAsync<T>(string key, T? value, bool missing, CacheEntryOptions? entry, string? seen, long readAt, long invalidations)
    {
        var ttl = Ttl(entry, missing);
        var logicalExpiry = _clock.UnixMs + (long)ttl.TotalMilliseconds;
        if (seen is null || (_l2.Breaker.IsOpen && !_options.ThrowOnRedisErrors))
        {
            // Redis did not answer the read or is known to be away: keep the value in L1 without building an exception.
            if (_l2.Breaker.IsOpen) _l2.Breaker.CountShortCircuit(L2Cache.Component);
            RedisMetrics.RecordCacheFallback("set");
            _l1?.SetUnlessInvalidated(invalidations, key, value, missing, logicalExpiry, entry?.Tags);
            return;
        }
        // A removal of a key that was absent shows only through its tombstone, so only as long as that lives.
        if (seen.Length == 0 && _clock.TickMs - readAt >= _tombstoneTtlMs)
        {
            CacheTelemetry.FillDiscarded(_options.KeyPrefix, "slow");
            return;
        }
        _subscription?.Ensure();
        var physical = _options.FailSafe && entry?.ExactTtl != true ? ttl + _options.FailSafeMaxAge : ttl;
        try
        {
            if (!await _l2.FillAsync(key, value, missing, logicalExpiry, physical, entry?.Tags, seen).ConfigureAwait(false))
            {
                CacheTelemetry.FillDiscarded(_options.KeyPrefix, "changed");
                return;
            }
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e) && !_options.ThrowOnRedisErrors)
        {
            RedisMetrics.RecordCacheFallback("set");
        }
        _l1?.SetUnlessInvalidated(invalidations, key, value, missing, logicalExpiry, entry?.Tags);
    }

    // The token is looked at before anything is sent: a write that reached Redis goes on to L1 and to the other
    // instances, or their copies would disagree with Redis (bounded by the breaker's operation timeout).
    private async Task WriteAsync<T>(string key, T? value, bool missing, CacheEntryOptions? entry, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _subscription?.Ensure();
        var ttl = Ttl(entry, missing);
        var logicalExpiry = _clock.UnixMs + (long)ttl.TotalMilliseconds;
        var physical = _options.FailSafe && entry?.ExactTtl != true ? ttl + _options.FailSafeMaxAge : ttl;
        await _l2.WriteAsync(key, value, missing, logicalExpiry, physical, entry?.Tags, CancellationToken.None).ConfigureAwait(false);
        _l1?.Set(key, value, missing, logicalExpiry, entry?.Tags);
        if (_invalidation is not null) await _invalidation.PublishKeyAsync(key).ConfigureAwait(false);
    }

    private TimeSpan Ttl(CacheEntryOptions? entry, bool missing)
    {
        var ttl = missing && entry?.NullAsValue != true && _options.NegativeTtl is { } negative ? negative : entry?.Ttl ?? _options.DefaultTtl;
        if (ttl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(entry), ttl, "the entry TTL must be positive.");
        // Jitter spreads the expiry of entries written together, so they are not all refetched at once.
        return _options.JitterFraction == 0 || entry?.ExactTtl == true ? ttl : ttl + (ttl * (Random.Shared.NextDouble() * _options.JitterFraction));
    }

    private async Task TryRemoveQuietlyAsync(string key)
    {
        _l1?.Drop(key);
        try
        {
            await RemoveAsync(key).ConfigureAwait(false);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e))
        {
            RedisMetrics.RecordCacheFallback("remove");
        }
    }
}
