using Microsoft.Extensions.Logging;
using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core.Configuration;

namespace Polystore.Mongo;

/// <summary>
/// One <see cref="MongoClient"/> built from <c>mongodb.yaml</c> (pool, replica set, read preference,
/// write concern) and the application's database. Create one per application and share it:
/// the client owns the connection pool.
/// </summary>
public sealed class MongoStore : IDisposable
{
    private MongoStore(MongoSettings settings, MongoClient client)
    {
        Settings = settings;
        Client = client;
        Database = client.GetDatabase(settings.Connection.Database);
    }

    /// <summary>Creates the client from <paramref name="settings"/> via <see cref="MongoDriverSettings"/>.</summary>
    /// <param name="settings">mongodb.yaml.</param>
    /// <param name="configure">Optional last changes to the driver settings (for example a short server selection timeout for a CLI).</param>
    /// <param name="loggerFactory">Where the driver and Polystore's MongoDB code log; null logs nothing.</param>
    public static MongoStore Create(MongoSettings settings, Action<MongoClientSettings>? configure = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (string.IsNullOrWhiteSpace(settings.Connection.Database))
            throw new ArgumentException("mongodb.yaml connection.database is empty", nameof(settings));
        var clientSettings = MongoDriverSettings.Build(settings, loggerFactory);
        configure?.Invoke(clientSettings);
        return new MongoStore(settings, new MongoClient(clientSettings));
    }

    /// <summary>The settings the client was built from.</summary>
    public MongoSettings Settings { get; }

    /// <summary>The driver client (owns the pool).</summary>
    public IMongoClient Client { get; }

    /// <summary>The database named by <c>connection.database</c>.</summary>
    public IMongoDatabase Database { get; }

    /// <summary>A collection of raw documents in <see cref="Database"/>.</summary>
    public IMongoCollection<BsonDocument> Collection(string name) => Database.GetCollection<BsonDocument>(name);

    /// <inheritdoc />
    public void Dispose() => ((MongoClient)Client).Dispose();
}
