using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using MongoDB.Driver;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Mongo;
using Polystore.Postgres;
using Polystore.Redis;
using StackExchange.Redis;

namespace Polystore.Hosting;

/// <summary>Registers the stores a Polystore config folder describes.</summary>
public static class PolystoreServiceCollectionExtensions
{
    /// <summary>
    /// Loads the config folder (validated, all or nothing: a bad config throws
    /// <see cref="ConfigException"/> at registration, not at first use) and registers every
    /// configured store as a singleton, with one health check per store tagged "polystore".
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configDirectory">The config folder; found like the CLI does (POLYSTORE_CONFIG_DIR, ./run up, ./config) when null.</param>
    public static IServiceCollection AddPolystore(this IServiceCollection services, string? configDirectory = null) =>
        services.AddPolystore(PolystoreConfig.Load(ConfigLocator.Locate(configDirectory).Directory));

    /// <summary>Registers the stores of an already loaded <paramref name="config"/>.</summary>
    /// <remarks>
    /// PostgreSQL: <see cref="PostgresDataSources"/> and <see cref="NpgsqlDataSource"/> (the primary).
    /// Redis: <see cref="IConnectionMultiplexer"/>, connected on first resolution and reconnecting by itself.
    /// MongoDB: <see cref="IMongoClient"/> and the configured <see cref="IMongoDatabase"/>.
    /// </remarks>
    public static IServiceCollection AddPolystore(this IServiceCollection services, PolystoreConfig config)
    {
        services.TryAddSingleton(config);
        var health = services.AddHealthChecks();
        if (config.Postgres is { } postgres)
        {
            services.TryAddSingleton(_ => PostgresDataSources.Create(postgres));
            services.TryAddSingleton<NpgsqlDataSource>(sp => sp.GetRequiredService<PostgresDataSources>().Primary);
            health.Add(new HealthCheckRegistration(StoreNames.Postgres, _ => new StorePingHealthCheck(async ct => await PostgresPing.PingAsync(postgres, ct).ConfigureAwait(false)), HealthStatus.Unhealthy, ["polystore"]));
        }
        if (config.Redis is { } redis)
        {
            services.TryAddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(RedisDriverSettings.Build(redis)));
            health.Add(new HealthCheckRegistration("redis", _ => new StorePingHealthCheck(async ct => [await RedisPing.PingAsync(redis, ct).ConfigureAwait(false)]), HealthStatus.Unhealthy, ["polystore"]));
        }
        if (config.Mongo is { } mongo)
        {
            services.TryAddSingleton<IMongoClient>(_ => new MongoClient(MongoDriverSettings.Build(mongo)));
            services.TryAddSingleton(sp => sp.GetRequiredService<IMongoClient>().GetDatabase(mongo.Connection.Database));
            health.Add(new HealthCheckRegistration(StoreNames.Mongo, _ => new StorePingHealthCheck(async ct => [await MongoPing.PingAsync(mongo, ct).ConfigureAwait(false)]), HealthStatus.Unhealthy, ["polystore"]));
        }
        return services;
    }
}
