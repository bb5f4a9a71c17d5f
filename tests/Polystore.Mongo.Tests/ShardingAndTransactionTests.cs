using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Mongo.Tests;

public sealed class ShardingCommandTests
{
    private static MongoSettings Seed(bool enabled = true, string? key = "user_id", int chunk = 64) => new()
    {
        Connection = new() { Uri = "mongodb://localhost:27017", Database = "myapp" },
        Sharding = new() { Enabled = enabled, ShardKey = key, ChunkSizeMb = chunk },
    };

    [Fact]
    public void Seed_sharding_config_becomes_the_manuals_admin_commands()
    {
        // Manual: enableSharding, shardCollection, configureCollectionBalancing (chunkSize in MiB).
        Assert.Equal(
        [
            BsonDocument.Parse("""{ "enableSharding": "myapp" }"""),
            BsonDocument.Parse("""{ "shardCollection": "myapp.orders", "key": { "user_id": 1 } }"""),
            BsonDocument.Parse("""{ "configureCollectionBalancing": "myapp.orders", "chunkSize": 64 }"""),
            BsonDocument.Parse("""{ "shardCollection": "myapp.events", "key": { "user_id": 1 } }"""),
            BsonDocument.Parse("""{ "configureCollectionBalancing": "myapp.events", "chunkSize": 64 }"""),
        ], MongoSharding.Commands(Seed(), ["orders", "events"]));
    }

    [Fact]
    public void Hashed_key_and_default_chunk_size()
    {
        Assert.Equal(
        [
            BsonDocument.Parse("""{ "enableSharding": "myapp" }"""),
            BsonDocument.Parse("""{ "shardCollection": "myapp.orders", "key": { "user_id": "hashed" } }"""),
        ], MongoSharding.Commands(Seed(chunk: 128), ["orders"], hashed: true));
    }

    [Fact]
    public void Disabled_or_keyless_sharding_is_refused_naming_the_setting()
    {
        Assert.Contains("sharding.enabled", Assert.Throws<InvalidOperationException>(() => MongoSharding.Commands(Seed(enabled: false), ["orders"])).Message, StringComparison.Ordinal);
        Assert.Contains("sharding.shard_key", Assert.Throws<InvalidOperationException>(() => MongoSharding.Commands(Seed(key: null), ["orders"])).Message, StringComparison.Ordinal);
        Assert.Contains("sharding.shard_key", Assert.Throws<ArgumentException>(() => MongoSharding.Commands(Seed(key: "$bad"), ["orders"])).Message, StringComparison.Ordinal);
    }
}

public sealed class TopologyTests
{
    [Fact]
    public void Hello_replies_classify_the_deployment()
    {
        Assert.Equal(BsonDocument.Parse("""{ "hello": 1 }"""), MongoTopology.HelloCommand);
        // Manual, hello output for each deployment kind.
        Assert.Equal(MongoTopologyKind.Standalone, MongoTopology.FromHello(BsonDocument.Parse("""{ "isWritablePrimary": true, "maxWireVersion": 21, "ok": 1 }""")));
        Assert.Equal(MongoTopologyKind.ReplicaSet, MongoTopology.FromHello(BsonDocument.Parse("""{ "isWritablePrimary": true, "setName": "rs0", "hosts": ["a:27017"], "ok": 1 }""")));
        Assert.Equal(MongoTopologyKind.Mongos, MongoTopology.FromHello(BsonDocument.Parse("""{ "isWritablePrimary": true, "msg": "isdbgrid", "ok": 1 }""")));
    }

    [Fact]
    public void Transaction_defaults_and_the_standalone_message()
    {
        Assert.Equal(ReadConcern.Snapshot, MongoTransactions.DefaultOptions.ReadConcern);
        Assert.Equal(WriteConcern.WMajority, MongoTransactions.DefaultOptions.WriteConcern);
        Assert.Equal(ReadPreference.Primary, MongoTransactions.DefaultOptions.ReadPreference);
        var message = MongoTransactions.NotSupported("db1:27017").Message;
        Assert.Contains("server at db1:27017 is a standalone mongod", message, StringComparison.Ordinal);
        Assert.Contains("replication.replica_set", message, StringComparison.Ordinal);
    }
}

public sealed class TransactionServerTests
{
    [Fact]
    public async Task Transactions_commit_on_a_replica_set_and_are_refused_on_a_standalone()
    {
        if (TestServers.Mongo is not { } mongo)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        var ct = TestContext.Current.CancellationToken;
        using var store = MongoStore.Create(mongo);
        var name = TestServers.UniqueName("tx");
        var kind = await MongoTopology.DetectAsync(store.Client, ct);
        try
        {
            if (kind == MongoTopologyKind.Standalone)
            {
                await Assert.ThrowsAsync<MongoTransactionsNotSupportedException>(() => MongoTransactions.RunAsync(store, (_, _) => Task.FromResult(1), cancellationToken: ct));
                using var sharded = MongoStore.Create(new MongoSettings { Connection = mongo.Connection, Sharding = new() { Enabled = true, ShardKey = "user_id" } });
                var e = await Assert.ThrowsAsync<InvalidOperationException>(() => MongoSharding.ShardCollectionsAsync(sharded, [name], cancellationToken: ct));
                Assert.Contains("need a mongos", e.Message, StringComparison.Ordinal);
                return;
            }
            await store.Database.CreateCollectionAsync(name, cancellationToken: ct);
            var users = store.Collection(name);
            var count = await MongoTransactions.RunAsync(store, async (session, token) =>
            {
                await users.InsertOneAsync(session, new BsonDocument("_id", 1), cancellationToken: token);
                await users.InsertOneAsync(session, new BsonDocument("_id", 2), cancellationToken: token);
                return await users.CountDocumentsAsync(session, FilterDefinition<BsonDocument>.Empty, cancellationToken: token);
            }, cancellationToken: ct);
            Assert.Equal(2, count);
            // A failing body aborts: nothing of it is visible.
            await Assert.ThrowsAsync<InvalidOperationException>(() => MongoTransactions.RunAsync<int>(store, async (session, token) =>
            {
                await users.InsertOneAsync(session, new BsonDocument("_id", 3), cancellationToken: token);
                throw new InvalidOperationException("boom");
            }, cancellationToken: ct));
            Assert.Equal(2, await users.CountDocumentsAsync(FilterDefinition<BsonDocument>.Empty, cancellationToken: ct));
        }
        finally
        {
            await store.Database.DropCollectionAsync(name, CancellationToken.None);
        }
    }
}
