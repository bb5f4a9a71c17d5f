using Microsoft.Extensions.DependencyInjection;
using Polystore.Core.Configuration;

namespace Polystore.Cli;

/// <summary>
/// Builds a command's stores through <c>AddPolystore(config).AddConfiguredStores()</c>, the same registration an
/// application uses. Dispose the provider (await using) and every client it built is closed.
/// </summary>
internal static class CliServices
{
    public static ServiceProvider Build(PolystoreConfig config, Action<IServiceCollection>? configure = null)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddPolystore(config).AddConfiguredStores();
        configure?.Invoke(services);
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
    }
}
