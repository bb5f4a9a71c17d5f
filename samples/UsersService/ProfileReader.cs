using System.Globalization;
using Polystore.Samples.Users;
using StackExchange.Redis;

namespace Polystore.Samples.UsersService;

/// <summary>
/// Reads profiles through the Redis cache (whose version floor keeps a stale copy from being cached again after a
/// newer one was projected), and straight from the read model while Redis is unreachable.
/// </summary>
internal sealed class ProfileReader(UsersApp users, ILogger<ProfileReader> logger) : IProfileSource
{
    public async Task<(UserProfile? Profile, bool FromCache)> GetAsync(long id, CancellationToken cancellationToken)
    {
        try
        {
            return await users.Queries.GetUserProfileAsync(id, cancellationToken);
        }
        catch (Exception e) when (e is RedisConnectionException or RedisTimeoutException)
        {
            logger.LogWarning("The profile cache is unavailable ({Error}); reading the read model directly.", e.GetType().Name);
            var model = await users.Store.GetAsync(id.ToString(CultureInfo.InvariantCulture), cancellationToken);
            return (model?.Document, false);
        }
    }
}
