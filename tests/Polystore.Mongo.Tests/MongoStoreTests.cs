using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Mongo.Tests;

public sealed class MongoStoreTests
{
    [Fact]
    public void Store_is_built_from_settings_and_exposes_the_configured_database()
    {
        using var store = MongoStore.Create(new MongoSettings
        {
            Connection = new() { Uri = "mongodb://localhost:27017", Database = "myapp" },
            Pool = new() { MaxPoolSize = 42, WaitQueueTimeoutMs = 10000 },
            Replication = new() { WriteConcern = new() { W = "majority" } },
        });
        Assert.Equal("myapp", store.Database.DatabaseNamespace.DatabaseName);
        Assert.Equal(42, store.Client.Settings.MaxConnectionPoolSize);
        Assert.Equal(WriteConcern.WMajority.W, store.Client.Settings.WriteConcern.W);
        Assert.Equal("myapp.users", store.Collection("users").CollectionNamespace.FullName);
    }

    [Fact]
    public void Empty_database_name_is_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => MongoStore.Create(new MongoSettings { Connection = new() { Database = "" } }));
        Assert.Contains("connection.database", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Store_answers_ping_on_a_real_server()
    {
        if (TestServers.Mongo is not { } mongo)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        using var store = MongoStore.Create(mongo);
        var reply = await store.Database.RunCommandAsync<BsonDocument>(new BsonDocument("ping", 1), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(1.0, reply["ok"].ToDouble());
    }
}
