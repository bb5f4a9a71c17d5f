using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Caching.Distributed;
using Polystore.Samples.Users;
using Polystore.Samples.UsersService;

namespace Polystore.Bench.ServiceHost;

/// <summary>
/// Cache-aside over Microsoft's <see cref="IDistributedCache"/> (Redis): the profile as JSON bytes, an hour like
/// Polystore's cache; a miss loads the read model and caches it. Nothing invalidates it on a write: it serves a
/// changed profile until the entry expires.
/// </summary>
internal sealed class DistributedCacheProfileSource(IDistributedCache cache, UsersApp users) : IProfileSource
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly DistributedCacheEntryOptions Entry = new() { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) };

    public async Task<(UserProfile? Profile, bool FromCache)> GetAsync(long id, CancellationToken cancellationToken)
    {
        var key = "profile:" + id.ToString(CultureInfo.InvariantCulture);
        if (await cache.GetAsync(key, cancellationToken) is { } bytes) return (JsonSerializer.Deserialize<UserProfile>(bytes, Json), true);
        var model = await users.Store.GetAsync(id.ToString(CultureInfo.InvariantCulture), cancellationToken);
        if (model is null) return (null, false);
        await cache.SetAsync(key, JsonSerializer.SerializeToUtf8Bytes(model.Document, Json), Entry, cancellationToken);
        return (model.Document, false);
    }
}
