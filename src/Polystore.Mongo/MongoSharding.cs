using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core.Configuration;

namespace Polystore.Mongo;

/// <summary>
/// The admin commands that shard the application's collections on the configured <c>sharding.shard_key</c>,
/// for use on a mongos.
/// </summary>
public static class MongoSharding
{
    /// <summary>The server's default chunk size in MiB; a different <c>chunk_size_mb</c> is applied per collection.</summary>
    public const int DefaultChunkSizeMb = 128;

    /// <summary><c>{ enableSharding: db }</c> (implicit since MongoDB 6.0, still accepted).</summary>
    public static BsonDocument EnableShardingCommand(string database)
    {
        ArgumentException.ThrowIfNullOrEmpty(database);
        return new BsonDocument("enableSharding", database);
    }

    /// <summary><c>{ shardCollection: "db.coll", key: { shardKey: 1 | "hashed" } }</c>.</summary>
    public static BsonDocument ShardCollectionCommand(string database, string collection, string shardKey, bool hashed = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(database);
        MongoNames.ValidateCollection(collection, nameof(collection));
        MongoNames.ValidateField(shardKey, "sharding.shard_key");
        return new BsonDocument
        {
            { "shardCollection", $"{database}.{collection}" },
            { "key", new BsonDocument(shardKey, hashed ? "hashed" : (BsonValue)1) },
        };
    }

    /// <summary><c>{ configureCollectionBalancing: "db.coll", chunkSize: MiB }</c> (MongoDB 5.3+).</summary>
    public static BsonDocument ChunkSizeCommand(string database, string collection, int chunkSizeMb)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSizeMb, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(chunkSizeMb, 1024);
        return new BsonDocument { { "configureCollectionBalancing", $"{database}.{collection}" }, { "chunkSize", chunkSizeMb } };
    }

    /// <summary>
    /// Every admin command, in order, that shards <paramref name="collections"/> as <c>mongodb.yaml</c> says:
    /// enableSharding, then per collection shardCollection and (when chunk_size_mb is not the default) configureCollectionBalancing.
    /// </summary>
    public static IReadOnlyList<BsonDocument> Commands(MongoSettings settings, IEnumerable<string> collections, bool hashed = false)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(collections);
        if (!settings.Sharding.Enabled)
            throw new InvalidOperationException("mongodb.yaml sharding.enabled is false: set it to true to shard collections");
        if (settings.Sharding.ShardKey is not { Length: > 0 } key)
            throw new InvalidOperationException("mongodb.yaml sharding.shard_key is not set: name the field collections are sharded on");
        var database = settings.Connection.Database;
        var commands = new List<BsonDocument> { EnableShardingCommand(database) };
        foreach (var collection in collections)
        {
            commands.Add(ShardCollectionCommand(database, collection, key, hashed));
            if (settings.Sharding.ChunkSizeMb != DefaultChunkSizeMb) commands.Add(ChunkSizeCommand(database, collection, settings.Sharding.ChunkSizeMb));
        }
        return commands;
    }

    /// <summary>Checks that the server is a mongos, then runs <see cref="Commands"/> on the admin database; returns the replies.</summary>
    public static async Task<IReadOnlyList<BsonDocument>> ShardCollectionsAsync(MongoStore store, IEnumerable<string> collections, bool hashed = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var commands = Commands(store.Settings, collections, hashed);
        var kind = await MongoTopology.DetectAsync(store.Client, cancellationToken).ConfigureAwait(false);
        if (kind != MongoTopologyKind.Mongos)
            throw new InvalidOperationException($"sharding commands need a mongos router; the server at {MongoTopology.Endpoint(store.Client)} is a {(kind == MongoTopologyKind.ReplicaSet ? "replica set member" : "standalone mongod")}");
        var admin = store.Client.GetDatabase("admin");
        var replies = new List<BsonDocument>();
        foreach (var command in commands)
            replies.Add(await admin.RunCommandAsync<BsonDocument>(command, ReadPreference.Primary, cancellationToken).ConfigureAwait(false));
        return replies;
    }
}
