using System.Text.Json;
using Polystore.Integration.Projections;
using StackExchange.Redis;

namespace Polystore.Integration.Cqrs;

/// <summary>
/// Redis cache-aside in front of a read model, which cannot re-cache a stale document. A read looks in
/// Redis, else loads the store and caches what it loaded, with a jittered TTL. After a projection
/// commits a newer version it calls <see cref="InvalidateAsync"/>, which drops the cached value and
/// leaves a version floor beside its key (same hash slot); a reader's write is accepted only at or above
/// the floor, so a reader that loaded version 3 just before version 4 was projected cannot put version 3 back.
/// With <see cref="ReadModelCacheOptions.LocalTtl"/> set, each process also keeps the documents it read, dropped in
/// every process by the same invalidation (published on a Redis channel by the invalidation itself).
/// </summary>
/// <typeparam name="T">The document type (serialized with System.Text.Json).</typeparam>
public sealed class ReadModelCache<T> : IAsyncDisposable
{
    private readonly IDatabase _redis;
    private readonly IReadModelStore<T> _store;
    private readonly JsonSerializerOptions _json;
    private readonly string _channel;
    private readonly LocalReadModelCopies<T>? _local;
    private readonly ReadModelInvalidationChannel<T>? _localChannel;

    /// <summary>Creates the cache.</summary>
    /// <param name="redis">The Redis database.</param>
    /// <param name="store">The read model it caches.</param>
    /// <param name="prefix">The key prefix; a document is cached at the prefix followed by its id in braces (a hash tag).</param>
    /// <param name="ttl">How long a cached document lives (one hour by default, ±10 %); bounds staleness if an invalidation is lost.</param>
    /// <param name="json">How documents are serialized in Redis; web defaults when null.</param>
    public ReadModelCache(IDatabase redis, IReadModelStore<T> store, string prefix, TimeSpan? ttl = null, JsonSerializerOptions? json = null)
        : this(redis, store, prefix, new ReadModelCacheOptions { Ttl = ttl ?? TimeSpan.FromHours(1), Json = json })
    {
    }

    /// <summary>Creates the cache.</summary>
    /// <param name="redis">The Redis database.</param>
    /// <param name="store">The read model it caches.</param>
    /// <param name="prefix">The key prefix; a document is cached at the prefix followed by its id in braces (a hash tag).</param>
    /// <param name="options">Lifetimes, local copies and serialization.</param>
    public ReadModelCache(IDatabase redis, IReadModelStore<T> store, string prefix, ReadModelCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        ArgumentNullException.ThrowIfNull(options);
        // Bounded so the floor's lifetime (1.2 x Ttl) and local expiry times stay far from overflow.
        if (options.Ttl <= TimeSpan.Zero || options.Ttl > MaxTtl) throw new ArgumentOutOfRangeException(nameof(options), options.Ttl, "Ttl must be positive and at most 3650 days");
        if (options.LocalTtl < TimeSpan.Zero || options.LocalTtl > MaxTtl) throw new ArgumentOutOfRangeException(nameof(options), options.LocalTtl, "LocalTtl must be 0..3650 days");
        if (options.LocalCapacity < 1) throw new ArgumentOutOfRangeException(nameof(options), options.LocalCapacity, "LocalCapacity must be at least 1");
        _redis = redis;
        _store = store;
        Prefix = prefix;
        Ttl = options.Ttl;
        _json = options.Json ?? new JsonSerializerOptions(JsonSerializerDefaults.Web);
        _channel = ReadModelInvalidationChannel<T>.Name(prefix);
        if (options.LocalTtl > TimeSpan.Zero)
        {
            var time = options.TimeProvider ?? TimeProvider.System;
            _local = new LocalReadModelCopies<T>(options.LocalTtl, options.LocalCapacity, time);
            _localChannel = new ReadModelInvalidationChannel<T>(redis.Multiplexer, prefix, _local, time);
        }
    }

    private static readonly TimeSpan MaxTtl = TimeSpan.FromDays(3650);

    /// <summary>The key prefix.</summary>
    public string Prefix { get; }

    /// <summary>The nominal lifetime of a cached document.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>Whether this process is keeping local copies right now (set, and hearing every invalidation).</summary>
    public bool LocalCopiesActive => _local?.Listening == true;

    // Outlives the longest jittered TTL, so no value cached below a floor survives the floor.
    private TimeSpan FloorTtl => Ttl * 1.2;

    /// <summary>The Redis key of a document (hash-tagged by id).</summary>
    public string Key(string id) => VersionedCache.Keys(Prefix, id).Value.ToString();

    /// <summary>The document and whether it came from a cache (this process's copy or Redis); null when the store has none.</summary>
    public async Task<(ReadModel<T>? Model, bool FromCache)> GetAsync(string id, CancellationToken cancellationToken = default)
    {
        long epoch = 0;
        if (_local is not null)
        {
            if (_local.TryGet(id, out var copy)) return (copy, true);
            _localChannel!.EnsureListening();
            epoch = _local.Epoch;
        }
        var cached = await _redis.StringGetAsync(VersionedCache.Keys(Prefix, id).Value).ConfigureAwait(false);
        if (cached.HasValue)
        {
            var model = JsonSerializer.Deserialize<ReadModel<T>>(cached.ToString(), _json)!;
            _local?.Offer(model, epoch);
            return (model, true);
        }
        var stored = await _store.GetAsync(id, cancellationToken).ConfigureAwait(false);
        if (stored is null) return (null, false);
        // Jitter spreads the expiry of documents cached together. A copy refused by Redis's floor is stale: not kept here either.
        if (await TrySetAsync(stored, Ttl * (0.9 + Random.Shared.NextDouble() * 0.2)).ConfigureAwait(false)) _local?.Offer(stored, epoch);
        return (stored, false);
    }

    /// <summary>
    /// Drops the cached document, in Redis and in every process's local copies, and keeps any older version than
    /// <paramref name="version"/> from being cached again.
    /// </summary>
    public async Task InvalidateAsync(string id, long version)
    {
        await VersionedCache.InvalidateAsync(_redis, Prefix, id, version, FloorTtl, _channel).ConfigureAwait(false);
        _local?.Invalidate(id, version); // at once here; other processes hear it on the channel
    }

    /// <summary>Caches <paramref name="model"/> unless an invalidation has seen a newer version; true when cached.</summary>
    internal Task<bool> TrySetAsync(ReadModel<T> model, TimeSpan ttl) =>
        VersionedCache.SetIfCurrentAsync(_redis, Prefix, model.Id, JsonSerializer.Serialize(model, _json), model.Version, ttl, FloorTtl);

    /// <summary>Stops listening for invalidations and drops the local copies; Redis is untouched.</summary>
    public ValueTask DisposeAsync() => _localChannel?.DisposeAsync() ?? ValueTask.CompletedTask;
}
