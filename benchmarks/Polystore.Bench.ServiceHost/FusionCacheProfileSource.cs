using System.Globalization;
using Polystore.Samples.Users;
using Polystore.Samples.UsersService;
using ZiggyCreatures.Caching.Fusion;

namespace Polystore.Bench.ServiceHost;

/// <summary>
/// FusionCache's GetOrSet over memory (L1) and Redis (L2), an hour like Polystore's cache. An absent profile is not
/// cached (it may be projected a moment later). Nothing invalidates it on a write: it serves a changed profile until
/// the entry expires.
/// </summary>
internal sealed class FusionCacheProfileSource(IFusionCache cache, UsersApp users) : IProfileSource
{
    public async Task<(UserProfile? Profile, bool FromCache)> GetAsync(long id, CancellationToken cancellationToken)
    {
        var loaded = false;
        var profile = await cache.GetOrSetAsync<UserProfile?>("profile:" + id.ToString(CultureInfo.InvariantCulture), async (context, ct) =>
        {
            loaded = true;
            var model = await users.Store.GetAsync(id.ToString(CultureInfo.InvariantCulture), ct);
            if (model is null)
            {
                context.Options.SkipMemoryCacheWrite = true;
                context.Options.SkipDistributedCacheWrite = true;
            }
            return model?.Document;
        }, token: cancellationToken);
        return (profile, !loaded);
    }
}
