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
/// </summary>
/// <typeparam name="T">The document type (serialized with System.Text.Json).</typeparam>
public sealed class ReadModelCache<T>
{
    private readonly IDatabase _redis;
    private readonly IReadModelStore<T> _store;
    private readonly JsonSerializerOptions _json;

    /// <summary>Creates the cache.</summary>
    /// <param name="redis">The Redis database.</param>
    /// <param name="store">The read model it caches.</param>
    /// <param name="prefix">The key prefix; a document is cached at the prefix followed by its id in braces (a hash tag).</param>
    /// <param name="ttl">How long a cached document lives (one hour by default, ±10 %); bounds staleness if an invalidation is lost.</param>
    /// <param name="json">How documents are serialized in Redis; web defaults when null.</param>
    public ReadModelCache(IDatabase redis, IReadModelStore<T> store, string prefix, TimeSpan? ttl = null, JsonSerializerOptions? json = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        if (ttl is { } t && t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ttl), t, "must be positive");
        _redis = redis;
        _store = store;
        Prefix = prefix;
        Ttl = ttl ?? TimeSpan.FromHours(1);
        _json = json ?? new JsonSerializerOptions(JsonSerializerDefaults.Web);
    }

    /// <summary>The key prefix.</summary>
    public string Prefix { get; }

    /// <summary>The nominal lifetime of a cached document.</summary>
    public TimeSpan Ttl { get; }

    // Outlives the longest jittered TTL, so no value cached below a floor survives the floor.
    private TimeSpan FloorTtl => Ttl * 1.2;

    /// <summary>The Redis key of a document (hash-tagged by id).</summary>
    public string Key(string id) => VersionedCache.Keys(Prefix, id).Value.ToString();

    /// <summary>The document and whether it came from Redis; null when the store has none.</summary>
    public async Task<(ReadModel<T>? Model, bool FromCache)> GetAsync(string id, CancellationToken cancellationToken = default)
    {
        var cached = await _redis.StringGetAsync(VersionedCache.Keys(Prefix, id).Value).ConfigureAwait(false);
        if (cached.HasValue) return (JsonSerializer.Deserialize<ReadModel<T>>(cached.ToString(), _json), true);
        var stored = await _store.GetAsync(id, cancellationToken).ConfigureAwait(false);
        if (stored is null) return (null, false);
        // Jitter spreads the expiry of documents cached together.
        await TrySetAsync(stored, Ttl * (0.9 + Random.Shared.NextDouble() * 0.2)).ConfigureAwait(false);
        return (stored, false);
    }

    /// <summary>Drops the cached document and keeps any older version than <paramref name="version"/> from being cached again.</summary>
    public Task InvalidateAsync(string id, long version) => VersionedCache.InvalidateAsync(_redis, Prefix, id, version, FloorTtl);

    /// <summary>Caches <paramref name="model"/> unless an invalidation has seen a newer version; true when cached.</summary>
    internal Task<bool> TrySetAsync(ReadModel<T> model, TimeSpan ttl) =>
        VersionedCache.SetIfCurrentAsync(_redis, Prefix, model.Id, JsonSerializer.Serialize(model, _json), model.Version, ttl, FloorTtl);
}
