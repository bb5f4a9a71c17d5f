using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using MongoDB.Driver;
using Polystore;
using Polystore.Core.Configuration;
using Polystore.Mongo;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds MongoDB to Polystore's registration.</summary>
public static class MongoPolystoreBuilderExtensions
{
    /// <summary>
    /// Registers <see cref="MongoStore"/>, its <see cref="IMongoClient"/> (with the host's <see cref="ILoggerFactory"/>)
    /// and the configured <see cref="IMongoDatabase"/>, a health check named "mongo", and MongoDB's part of the doctor.
    /// The provider disposes the client. Start-up validation fails when MongoDB is not configured.
    /// </summary>
    public static PolystoreBuilder AddMongo(this PolystoreBuilder builder, Action<MongoServiceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new MongoServiceOptions();
        configure?.Invoke(options);
        builder.Services.TryAddSingleton(sp =>
        {
            var settings = sp.GetRequiredService<PolystoreConfig>().Mongo
                ?? throw new InvalidOperationException($"MongoDB is added to Polystore but not configured: add {StoreNames.ConfigFile(StoreNames.Mongo)} or a 'Mongo' section");
            return MongoStore.Create(settings, options.ConfigureClient, sp.GetService<ILoggerFactory>());
        });
        builder.Services.TryAddSingleton(sp => sp.GetRequiredService<MongoStore>().Client);
        builder.Services.TryAddSingleton(sp => sp.GetRequiredService<MongoStore>().Database);
        return builder.AddStore(StoreNames.Mongo, sp => new MongoStoreDoctor(sp.GetRequiredService<MongoStore>(), options.Diagnostics));
    }
}
