using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Postgres;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds PostgreSQL to Polystore's registration.</summary>
public static class PostgresPolystoreBuilderExtensions
{
    /// <summary>
    /// Registers <see cref="PostgresDataSources"/> (the primary and the read replicas, built from the configuration's
    /// <c>postgres</c> settings with the host's <see cref="ILoggerFactory"/>) and <see cref="NpgsqlDataSource"/> (the
    /// primary), a health check named "postgres", and PostgreSQL's part of the doctor. The provider disposes the pools.
    /// Start-up validation fails when PostgreSQL is not configured.
    /// </summary>
    public static PolystoreBuilder AddPostgres(this PolystoreBuilder builder, Action<PostgresServiceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new PostgresServiceOptions();
        configure?.Invoke(options);
        builder.Services.TryAddSingleton(sp =>
        {
            var settings = sp.GetRequiredService<PolystoreConfig>().Postgres
                ?? throw new InvalidOperationException($"PostgreSQL is added to Polystore but not configured: add {StoreNames.ConfigFile(StoreNames.Postgres)} or a 'Postgres' section");
            return PostgresDataSources.Create(settings, options.ConfigureDataSource, sp.GetService<ILoggerFactory>());
        });
        builder.Services.TryAddSingleton<NpgsqlDataSource>(sp => sp.GetRequiredService<PostgresDataSources>().Primary);
        return builder.AddStore(StoreNames.Postgres, sp => new PostgresStoreDoctor(sp.GetRequiredService<PostgresDataSources>(), options.Diagnostics));
    }
}
