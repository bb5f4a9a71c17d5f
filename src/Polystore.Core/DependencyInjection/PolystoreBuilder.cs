using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;

namespace Polystore;

/// <summary>
/// What <c>services.AddPolystore(...)</c> returns: each store package adds itself to it (<c>.AddPostgres()</c>,
/// <c>.AddRedis()</c>, <c>.AddMongo()</c>), so an application references, and loads, only the drivers it uses.
/// </summary>
public sealed class PolystoreBuilder
{
    private readonly Func<string, bool> _configures;

    internal PolystoreBuilder(IServiceCollection services, Func<string, bool> configures, TimeSpan healthCheckTimeout)
    {
        Services = services;
        _configures = configures;
        HealthCheckTimeout = healthCheckTimeout;
    }

    /// <summary>The application's services.</summary>
    public IServiceCollection Services { get; }

    /// <summary>How long each store's health check may take before it reports Unhealthy.</summary>
    public TimeSpan HealthCheckTimeout { get; }

    /// <summary>
    /// Whether the configuration names <paramref name="store"/> (a file in the YAML folder, or a section under the
    /// configuration section): known at registration, before anything is validated or connected.
    /// </summary>
    public bool Configures(string store) => _configures(store);

    /// <summary>
    /// For store packages: registers <paramref name="store"/>'s doctor and its health check (named after the store,
    /// tagged "polystore", bounded by <see cref="HealthCheckTimeout"/>), and makes start-up validation fail with a
    /// clear message when the store is added but not configured. Adding the same store twice changes nothing.
    /// </summary>
    /// <param name="store">The store's name (<see cref="StoreNames"/>).</param>
    /// <param name="doctor">Builds the store's doctor over the application's own client.</param>
    public PolystoreBuilder AddStore(string store, Func<IServiceProvider, IStoreDoctor> doctor)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(store);
        ArgumentNullException.ThrowIfNull(doctor);
        if (Services.Any(d => d.ServiceType == typeof(StoreMarker) && Equals(d.ImplementationInstance, new StoreMarker(store)))) return this;
        Services.AddSingleton(new StoreMarker(store));
        Services.AddSingleton(doctor);
        Services.AddSingleton<IValidateOptions<PolystoreConfig>>(new StoreConfiguredValidation(store));
        var timeout = HealthCheckTimeout;
        Services.AddHealthChecks().Add(new HealthCheckRegistration(store,
            sp =>
            {
                var storeDoctor = sp.GetServices<IStoreDoctor>().First(d => d.Store == store);
                return new StorePingHealthCheck(storeDoctor);
            },
            HealthStatus.Unhealthy, ["polystore"], timeout));
        return this;
    }

    /// <summary>Marks a store as added, so a second <c>AddPostgres()</c> is a no-op.</summary>
    private sealed record StoreMarker(string Store);

    /// <summary>A store added but absent from the configuration fails at start-up, naming where to configure it.</summary>
    private sealed class StoreConfiguredValidation(string store) : IValidateOptions<PolystoreConfig>
    {
        public ValidateOptionsResult Validate(string? name, PolystoreConfig options)
        {
            return options.Configures(store) ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(
                $"{store} is added to Polystore but not configured: add {StoreNames.ConfigFile(store)} to the config folder " +
                $"(or set {StoreNames.UrlVariable(store)}), or a '{ConfigurationTree.SectionKey(store)}' section to the Polystore configuration");
        }
    }
}
