using System.Globalization;
using System.Text.Json;
using Polystore.Integration.Projections;
using StackExchange.Redis;

namespace Polystore.Integration.Cqrs;

/// <summary>The seed's UserQueryHandler: Redis cache-aside in front of the read model.</summary>
public sealed class UserQueryHandler
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly IReadModelStore<UserProfile> _store;
    private readonly IDatabase? _cache;
    private readonly string _cachePrefix;
    private readonly TimeSpan _ttl;

    /// <summary>Creates the handler.</summary>
    /// <param name="store">The read model.</param>
    /// <param name="cache">Redis, or null to read the store directly.</param>
    /// <param name="cachePrefix">Must match the projection's, which invalidates these keys.</param>
    /// <param name="ttl">How long a cached profile lives (the seed's hour by default); bounds staleness if an invalidation is lost.</param>
    public UserQueryHandler(IReadModelStore<UserProfile> store, IDatabase? cache = null, string cachePrefix = "profile:", TimeSpan? ttl = null)
    {
        _store = store;
        _cache = cache;
        _cachePrefix = cachePrefix;
        _ttl = ttl ?? TimeSpan.FromHours(1);
    }

    /// <summary>The seed's region analytics on the read model: users per region, most first.</summary>
    public Task<IReadOnlyList<KeyValuePair<string, long>>> GetRegionAnalyticsAsync(CancellationToken cancellationToken = default) =>
        _store.CountByAsync("region", cancellationToken);

    /// <summary>The cache key of a user's profile (hash-tagged by id).</summary>
    public string CacheKey(long userId) => VersionedCache.Keys(_cachePrefix, userId.ToString(CultureInfo.InvariantCulture)).Value.ToString();

    /// <summary>The profile and whether it came from the cache; null when the read model has no such user (yet).</summary>
    public async Task<(UserProfile? Profile, bool FromCache)> GetUserProfileAsync(long userId, CancellationToken cancellationToken = default)
    {
        var id = userId.ToString(CultureInfo.InvariantCulture);
        if (_cache is not null)
        {
            var cached = await _cache.StringGetAsync(VersionedCache.Keys(_cachePrefix, id).Value).ConfigureAwait(false);
            if (cached.HasValue) return (JsonSerializer.Deserialize<UserProfile>(cached.ToString(), Json), true);
        }
        var stored = await _store.GetAsync(id, cancellationToken).ConfigureAwait(false);
        if (stored is null) return (null, false);
        if (_cache is not null)
        {
            // Jitter spreads the expiry of profiles cached together.
            var ttl = _ttl * (0.9 + Random.Shared.NextDouble() * 0.2);
            await VersionedCache.SetIfCurrentAsync(_cache, _cachePrefix, id, JsonSerializer.Serialize(stored.Document, Json), stored.Version, ttl).ConfigureAwait(false);
        }
        return (stored.Document, false);
    }
}
