using Polystore.Samples.Users;

namespace Polystore.Samples.UsersService;

/// <summary>
/// Where <c>GET /users/{id}/profile</c> gets a profile. The service registers <see cref="ProfileReader"/> (the read
/// model through Polystore's cache); a host that embeds the service may register another one before building it.
/// </summary>
internal interface IProfileSource
{
    /// <summary>The profile and whether it came from a cache; null when the read model has no such user (yet).</summary>
    Task<(UserProfile? Profile, bool FromCache)> GetAsync(long id, CancellationToken cancellationToken);
}
