using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Polystore;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;

// In the DI namespace, like the platform's own AddXxx methods: no using line needed to find it.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Polystore's configuration and doctor; each store package then adds its store to the returned builder.</summary>
public static class PolystoreServiceCollectionExtensions
{
    /// <summary>How long one store's health check may take before it reports Unhealthy, unless the caller says otherwise.</summary>
    public static readonly TimeSpan DefaultHealthCheckTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Loads the YAML config folder now (validated, all or nothing: a bad config throws <see cref="ConfigException"/>
    /// here, not at first use) and registers it. Add the stores with <c>.AddPostgres()</c>, <c>.AddRedis()</c>,
    /// <c>.AddMongo()</c> (or every configured one with <c>.AddConfiguredStores()</c> from Polystore.Hosting).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configDirectory">
    /// The config folder; when null POLYSTORE_CONFIG_DIR, else the folder <c>./run up</c> wrote if it runs in the
    /// current folder, else ./config. Unlike the CLI it never searches parent folders.
    /// </param>
    /// <param name="healthCheckTimeout">How long each store's health check may take; null = <see cref="DefaultHealthCheckTimeout"/>.</param>
    public static PolystoreBuilder AddPolystore(this IServiceCollection services, string? configDirectory = null, TimeSpan? healthCheckTimeout = null) =>
        services.AddPolystore(PolystoreConfig.Load(ConfigLocator.LocateForHost(configDirectory, workingDirectory: null, Environment.GetEnvironmentVariable).Directory), healthCheckTimeout);

    /// <summary>
    /// Binds Polystore from a configuration section (usually <c>builder.Configuration.GetSection("Polystore")</c>) with
    /// children <c>Postgres</c>, <c>Redis</c> and <c>Mongo</c>, from appsettings.json, environment variables
    /// (<c>Polystore__Postgres__Pool__MaxSize</c>), the YAML folder (<c>AddPolystoreYaml</c>) or any other source. Keys
    /// may be spelled <c>MaxSize</c> or <c>max_size</c>. The settings are validated by the same rules as the YAML folder
    /// when the host starts (<c>ValidateOnStart</c>): a bad value fails start-up with an <see cref="OptionsValidationException"/>
    /// naming the key path and its source, secrets masked. Add the stores to the returned builder.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="section">The Polystore section.</param>
    /// <param name="healthCheckTimeout">How long each store's health check may take; null = <see cref="DefaultHealthCheckTimeout"/>.</param>
    public static PolystoreBuilder AddPolystore(this IServiceCollection services, IConfiguration section, TimeSpan? healthCheckTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(section);
        return services.AddPolystore(() => PolystoreConfig.Load(section),
            // As the loader decides: a child named after the store, even an empty one ("Redis": {}, every default).
            store => section.GetChildren().Any(child => ConfigBinder.NormalizeKey(child.Key) == store), healthCheckTimeout);
    }

    /// <summary>Registers an already loaded <paramref name="config"/>; add the stores to the returned builder.</summary>
    /// <remarks>
    /// Registers <see cref="PolystoreConfig"/> (also as <see cref="IOptions{PolystoreConfig}"/>, validated on start) and a
    /// <see cref="PolystoreDoctor"/> over the stores added to the builder.
    /// </remarks>
    public static PolystoreBuilder AddPolystore(this IServiceCollection services, PolystoreConfig config, TimeSpan? healthCheckTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        return services.AddPolystore(() => config, config.Configures, healthCheckTimeout);
    }

    /// <summary>
    /// The shared registration: <paramref name="load"/> runs once, when the options are first needed (at start-up with
    /// a host, which validates on start); <paramref name="configures"/> answers at registration which stores are named.
    /// </summary>
    internal static PolystoreBuilder AddPolystore(this IServiceCollection services, Func<PolystoreConfig> load, Func<string, bool> configures, TimeSpan? healthCheckTimeout)
    {
        ArgumentNullException.ThrowIfNull(services);
        var timeout = healthCheckTimeout ?? DefaultHealthCheckTimeout;
        if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(healthCheckTimeout), timeout, "the health-check timeout must be positive");
        if (services.Any(d => d.ServiceType == typeof(PolystoreBuilder)))
            throw new InvalidOperationException("AddPolystore was already called on these services: call it once and add every store to the builder it returns");
        services.AddOptions<PolystoreConfig>().ValidateOnStart();
        services.AddSingleton<IOptionsFactory<PolystoreConfig>>(sp => new PolystoreConfigOptionsFactory(load, sp.GetServices<IValidateOptions<PolystoreConfig>>()));
        services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<PolystoreConfig>>().Value);
        services.TryAddSingleton(sp => new PolystoreDoctor(sp.GetRequiredService<PolystoreConfig>(), sp.GetServices<IStoreDoctor>()));
        var builder = new PolystoreBuilder(services, configures, timeout);
        services.AddSingleton(builder);
        return builder;
    }
}
