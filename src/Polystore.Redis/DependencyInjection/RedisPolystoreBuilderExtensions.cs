using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Polystore;
using Polystore.Core.Configuration;
using Polystore.Redis;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds Redis to Polystore's registration.</summary>
public static class RedisPolystoreBuilderExtensions
{
    /// <summary>
    /// Registers <see cref="IConnectionMultiplexer"/> (standalone, sentinel or cluster as configured, with the host's
    /// <see cref="ILoggerFactory"/>; connected on first resolution and reconnecting by itself), a health check named
    /// "redis", and Redis's part of the doctor. The provider disposes the multiplexer. Start-up validation fails when
    /// Redis is not configured.
    /// </summary>
    public static PolystoreBuilder AddRedis(this PolystoreBuilder builder, Action<RedisServiceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new RedisServiceOptions();
        configure?.Invoke(options);
        builder.Services.TryAddSingleton<IConnectionMultiplexer>(sp =>
        {
            var connection = RedisDriverSettings.Build(Settings(sp));
            connection.LoggerFactory ??= sp.GetService<ILoggerFactory>();
            options.ConfigureConnection?.Invoke(connection);
            return ConnectionMultiplexer.Connect(connection);
        });
        return builder.AddStore(StoreNames.Redis, sp => new RedisStoreDoctor(Settings(sp), sp.GetRequiredService<IConnectionMultiplexer>(), options.Diagnostics));
    }

    private static RedisSettings Settings(IServiceProvider sp) => sp.GetRequiredService<PolystoreConfig>().Redis
        ?? throw new InvalidOperationException($"Redis is added to Polystore but not configured: add {StoreNames.ConfigFile(StoreNames.Redis)} or a 'Redis' section");
}
