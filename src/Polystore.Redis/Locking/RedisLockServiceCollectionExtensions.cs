using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using StackExchange.Redis;

namespace Polystore.Redis.Locking;

/// <summary>Registers the lock provider with dependency injection.</summary>
public static class RedisLockServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="RedisLockProvider"/> (singleton, over the <see cref="IConnectionMultiplexer"/> in the
    /// container) as itself and as <see cref="IRedisLockProvider"/>. The options are validated here, so a bad value
    /// throws at registration.
    /// </summary>
    public static IServiceCollection AddRedisLocks(this IServiceCollection services, RedisLockOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var validated = (options ?? new RedisLockOptions()).Validated();
        services.TryAddSingleton(sp => new RedisLockProvider(sp.GetRequiredService<IConnectionMultiplexer>(), validated));
        services.TryAddSingleton<IRedisLockProvider>(sp => sp.GetRequiredService<RedisLockProvider>());
        return services;
    }
}
