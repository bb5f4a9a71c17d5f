using Polystore;
using Polystore.Core.Configuration;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>The umbrella registration, for applications that want every store the configuration names.</summary>
public static class ConfiguredStoresPolystoreBuilderExtensions
{
    /// <summary>
    /// Adds each store the configuration names: <c>AddPostgres()</c>, <c>AddRedis()</c> and <c>AddMongo()</c> with
    /// their defaults. An application that uses only some stores can reference only their packages and add them itself.
    /// </summary>
    public static PolystoreBuilder AddConfiguredStores(this PolystoreBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (builder.Configures(StoreNames.Postgres)) builder.AddPostgres();
        if (builder.Configures(StoreNames.Redis)) builder.AddRedis();
        if (builder.Configures(StoreNames.Mongo)) builder.AddMongo();
        return builder;
    }
}
