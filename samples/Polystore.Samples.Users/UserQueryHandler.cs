using System.Globalization;
using Polystore.Integration.Cqrs;
using Polystore.Integration.Projections;

namespace Polystore.Samples.Users;

/// <summary>The user queries: profiles through the Redis cache when there is one, and region analytics on the read model.</summary>
/// <param name="store">The <c>user_profiles</c> read model.</param>
/// <param name="cache">The cache in front of <paramref name="store"/> (the one <see cref="UserProfileProjection"/> invalidates), or null to read the store directly.</param>
public sealed class UserQueryHandler(IReadModelStore<UserProfile> store, ReadModelCache<UserProfile>? cache = null)
{
    /// <summary>Users per region on the read model, most first.</summary>
    public Task<IReadOnlyList<KeyValuePair<string, long>>> GetRegionAnalyticsAsync(CancellationToken cancellationToken = default) =>
        store.CountByAsync("region", cancellationToken);

    /// <summary>The profile and whether it came from the cache; null when the read model has no such user (yet).</summary>
    public async Task<(UserProfile? Profile, bool FromCache)> GetUserProfileAsync(long userId, CancellationToken cancellationToken = default)
    {
        var id = userId.ToString(CultureInfo.InvariantCulture);
        if (cache is null) return ((await store.GetAsync(id, cancellationToken).ConfigureAwait(false))?.Document, false);
        var (model, fromCache) = await cache.GetAsync(id, cancellationToken).ConfigureAwait(false);
        return (model?.Document, fromCache);
    }
}
