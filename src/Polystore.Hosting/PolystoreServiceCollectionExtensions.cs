using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using MongoDB.Driver;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Integration.Diagnostics;
using Polystore.Mongo;
using Polystore.Postgres;
using Polystore.Redis;
using StackExchange.Redis;

namespace Polystore.Hosting;

/// <summary>Registers the stores a Polystore config describes: the one composition root of applications, tests and the CLI.</summary>
public static class PolystoreServiceCollectionExtensions
{
    /// <summary>How long one store's health check may take before it reports Unhealthy, unless the caller says otherwise.</summary>
    public static readonly TimeSpan DefaultHealthCheckTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Loads the config folder (validated, all or nothing: a bad config throws
    /// <see cref="ConfigException"/> at registration, not at first use) and registers every
    /// configured store as a singleton, with one health check per store tagged "polystore".
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configDirectory">The config folder; found like the CLI does (POLYSTORE_CONFIG_DIR, ./run up, ./config) when null.</param>
    /// <param name="healthCheckTimeout">How long each store's health check may take; null = <see cref="DefaultHealthCheckTimeout"/>.</param>
    public static IServiceCollection AddPolystore(this IServiceCollection services, string? configDirectory = null, TimeSpan? healthCheckTimeout = null) =>
        services.AddPolystore(PolystoreConfig.Load(ConfigLocator.Locate(configDirectory).Directory), healthCheckTimeout);

    /// <summary>Registers the stores of an already loaded <paramref name="config"/>.</summary>
    /// <remarks>
    /// PostgreSQL: <see cref="PostgresDataSources"/> and <see cref="NpgsqlDataSource"/> (the primary).
    /// Redis: <see cref="IConnectionMultiplexer"/>, connected on first resolution and reconnecting by itself.
    /// MongoDB: <see cref="MongoStore"/>, its <see cref="IMongoClient"/> and the configured <see cref="IMongoDatabase"/>.
    /// Always: the <see cref="PolystoreConfig"/> and a <see cref="PolystoreDoctor"/> over those clients.
    /// The health checks ("postgres", "redis", "mongo") ping through these same clients, each within its timeout.
    /// The provider disposes every client it built.
    /// </remarks>
    public static IServiceCollection AddPolystore(this IServiceCollection services, PolystoreConfig config, TimeSpan? healthCheckTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var timeout = healthCheckTimeout ?? DefaultHealthCheckTimeout;
        if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(healthCheckTimeout), timeout, "the health-check timeout must be positive");
        services.TryAddSingleton(config);
        var health = services.AddHealthChecks();
        if (config.Postgres is { } postgres)
        {
            services.TryAddSingleton(_ => PostgresDataSources.Create(postgres));
            services.TryAddSingleton<NpgsqlDataSource>(sp => sp.GetRequiredService<PostgresDataSources>().Primary);
            health.Add(HealthCheck(StoreNames.Postgres, timeout, sp =>
            {
                var sources = sp.GetRequiredService<PostgresDataSources>();
                return ct => PostgresPing.PingAsync(sources, ct);
            }));
        }
        if (config.Redis is { } redis)
        {
            services.TryAddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(RedisDriverSettings.Build(redis)));
            health.Add(HealthCheck(StoreNames.Redis, timeout, sp =>
            {
                var multiplexer = sp.GetRequiredService<IConnectionMultiplexer>();
                return ct => RedisPing.PingAsync(multiplexer, ct);
            }));
        }
        if (config.Mongo is { } mongo)
        {
            services.TryAddSingleton(_ => MongoStore.Create(mongo));
            services.TryAddSingleton(sp => sp.GetRequiredService<MongoStore>().Client);
            services.TryAddSingleton(sp => sp.GetRequiredService<MongoStore>().Database);
            health.Add(HealthCheck(StoreNames.Mongo, timeout, sp =>
            {
                var client = sp.GetRequiredService<IMongoClient>();
                return ct => MongoPing.PingAsync(client, ct);
            }));
        }
        services.TryAddSingleton(sp => new PolystoreDoctor(config,
            config.Postgres is null ? null : sp.GetRequiredService<PostgresDataSources>(),
            config.Redis is null ? null : sp.GetRequiredService<IConnectionMultiplexer>(),
            config.Mongo is null ? null : sp.GetRequiredService<IMongoClient>()));
        return services;
    }

    private static HealthCheckRegistration HealthCheck(string store, TimeSpan timeout, Func<IServiceProvider, Func<CancellationToken, Task<IReadOnlyList<StorePing>>>> ping) =>
        new(store, sp => new StorePingHealthCheck(ping(sp)), HealthStatus.Unhealthy, ["polystore"], timeout);
}
