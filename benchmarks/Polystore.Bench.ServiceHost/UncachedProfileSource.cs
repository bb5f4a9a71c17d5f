using System.Globalization;
using Polystore.Samples.Users;
using Polystore.Samples.UsersService;

namespace Polystore.Bench.ServiceHost;

/// <summary>No cache: every read loads the read model from its store.</summary>
internal sealed class UncachedProfileSource(UsersApp users) : IProfileSource
{
    public async Task<(UserProfile? Profile, bool FromCache)> GetAsync(long id, CancellationToken cancellationToken)
    {
        var model = await users.Store.GetAsync(id.ToString(CultureInfo.InvariantCulture), cancellationToken);
        return (model?.Document, false);
    }
}
