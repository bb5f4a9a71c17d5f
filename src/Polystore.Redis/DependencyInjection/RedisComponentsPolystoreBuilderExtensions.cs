using System.Threading.RateLimiting;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Polystore;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Adds Redis's components (cache, rate limiter, locks) to Polystore's registration; each adds Redis itself, and each
/// logs (circuit-breaker state changes, fallbacks) to the container's <see cref="ILoggerFactory"/>.
/// </summary>
public static class RedisComponentsPolystoreBuilderExtensions
{
    /// <summary>
    /// Registers one <see cref="RedisTieredCache"/> (singleton, over the registered <see cref="IConnectionMultiplexer"/>,
    /// built without waiting on Redis) as itself and as <see cref="IRedisTieredCache"/>, and makes it the application's
    /// <see cref="IDistributedCache"/> (<see cref="RedisDistributedCache"/>) and <see cref="HybridCache"/>
    /// (<see cref="RedisHybridCache"/>), replacing any registered before. The options are validated here, so a bad
    /// value throws at registration. Dispose the provider with <c>DisposeAsync</c> (as hosts do): the cache
    /// unsubscribes asynchronously.
    /// </summary>
    public static PolystoreBuilder AddRedisCache(this PolystoreBuilder builder, RedisTieredCacheOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var validated = (options ?? new RedisTieredCacheOptions()).Validated();
        var services = builder.AddRedis().Services;
        services.TryAddSingleton(sp => new RedisTieredCache(sp.GetRequiredService<IConnectionMultiplexer>(), validated, sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton<IRedisTieredCache>(sp => sp.GetRequiredService<RedisTieredCache>());
        services.Replace(ServiceDescriptor.Singleton<IDistributedCache>(sp => new RedisDistributedCache(sp.GetRequiredService<RedisTieredCache>())));
        services.Replace(ServiceDescriptor.Singleton<HybridCache>(sp => new RedisHybridCache(sp.GetRequiredService<IRedisTieredCache>())));
        return builder;
    }

    /// <summary>
    /// Registers one <see cref="RedisSlidingWindowRateLimiter"/> (singleton, over the registered multiplexer): take
    /// <c>ForKey(key)</c> for a <see cref="RateLimiter"/> or <c>Partitioned(selector)</c> for a
    /// <see cref="PartitionedRateLimiter{TResource}"/>, or hand it to ASP.NET Core's middleware with
    /// <c>AddPolystoreSlidingWindowPolicy</c> (Polystore.AspNetCore). The options are validated here, so a bad value
    /// throws at registration.
    /// </summary>
    public static PolystoreBuilder AddRedisRateLimiter(this PolystoreBuilder builder, RedisSlidingWindowOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        var validated = options.Validated();
        builder.AddRedis().Services.TryAddSingleton(sp => new RedisSlidingWindowRateLimiter(sp.GetRequiredService<IConnectionMultiplexer>(), validated, sp.GetService<ILoggerFactory>()));
        return builder;
    }

    /// <summary>
    /// Registers one <see cref="RedisLockProvider"/> (singleton, over the registered multiplexer) as itself and as
    /// <see cref="IRedisLockProvider"/>. The options are validated here, so a bad value throws at registration.
    /// </summary>
    public static PolystoreBuilder AddRedisLocks(this PolystoreBuilder builder, RedisLockOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var validated = (options ?? new RedisLockOptions()).Validated();
        var services = builder.AddRedis().Services;
        services.TryAddSingleton(sp => new RedisLockProvider(sp.GetRequiredService<IConnectionMultiplexer>(), validated, sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton<IRedisLockProvider>(sp => sp.GetRequiredService<RedisLockProvider>());
        return builder;
    }
}
