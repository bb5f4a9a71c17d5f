using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using StackExchange.Redis;

namespace Polystore.Redis.Caching;

/// <summary>Registers the tiered cache with dependency injection.</summary>
public static class RedisCacheServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="RedisTieredCache"/> (singleton, over the <see cref="IConnectionMultiplexer"/> in the
    /// container, built without waiting on Redis) as itself and as <see cref="IRedisTieredCache"/>, and makes it the
    /// application's <see cref="IDistributedCache"/> (<see cref="RedisDistributedCache"/>) and <see cref="HybridCache"/>
    /// (<see cref="RedisHybridCache"/>), replacing any registered before. The options are validated here, so a bad
    /// value throws at registration. Dispose the provider with <c>DisposeAsync</c> (as hosts do): the cache
    /// unsubscribes asynchronously.
    /// </summary>
    public static IServiceCollection AddRedisTieredCache(this IServiceCollection services, RedisTieredCacheOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var validated = (options ?? new RedisTieredCacheOptions()).Validated();
        services.TryAddSingleton(sp => new RedisTieredCache(sp.GetRequiredService<IConnectionMultiplexer>(), validated));
        services.TryAddSingleton<IRedisTieredCache>(sp => sp.GetRequiredService<RedisTieredCache>());
        services.Replace(ServiceDescriptor.Singleton<IDistributedCache>(sp => new RedisDistributedCache(sp.GetRequiredService<RedisTieredCache>())));
        services.Replace(ServiceDescriptor.Singleton<HybridCache>(sp => new RedisHybridCache(sp.GetRequiredService<IRedisTieredCache>())));
        return services;
    }
}
