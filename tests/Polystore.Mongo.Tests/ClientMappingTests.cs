using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Mongo.Tests;

public sealed class ClientMappingTests
{
    [Fact]
    public void Seed_settings_map_to_the_driver()
    {
        var c = MongoDriverSettings.Build(new MongoSettings
        {
            Connection = new() { Uri = "mongodb://localhost:27017", Database = "myapp" },
            Pool = new() { MaxPoolSize = 100, MinPoolSize = 10, MaxIdleTimeMs = 60000, WaitQueueTimeoutMs = 10000 },
            Replication = new()
            {
                ReplicaSet = "rs0",
                ReadPreference = MongoReadPreference.SecondaryPreferred,
                WriteConcern = new() { W = "majority", J = true, Wtimeout = 5000 },
            },
        });
        Assert.Equal((100, 10), (c.MaxConnectionPoolSize, c.MinConnectionPoolSize));
        Assert.Equal(TimeSpan.FromMinutes(1), c.MaxConnectionIdleTime);
        Assert.Equal(TimeSpan.FromSeconds(10), c.WaitQueueTimeout);
        Assert.Equal("rs0", c.ReplicaSetName);
        Assert.Equal(ReadPreferenceMode.SecondaryPreferred, c.ReadPreference.ReadPreferenceMode);
        Assert.Equal(("majority", TimeSpan.FromSeconds(5), true), (c.WriteConcern.W.ToString(), c.WriteConcern.WTimeout, c.WriteConcern.Journal));
    }

    [Theory]
    [InlineData("mongodb://u:hunter22@h/?authMechanism=BOGUS", "BOGUS")]
    [InlineData("mongodb://u:hunter22@h/?x=%zz", "escape")]
    public void A_uri_the_driver_refuses_is_a_config_error_that_hides_the_password(string uri, string mentions)
    {
        var e = Assert.Throws<ConfigException>(() => MongoDriverSettings.Build(new MongoSettings { Connection = new MongoConnectionSettings { Uri = uri } }));
        Assert.StartsWith("mongodb.yaml connection.uri: the MongoDB driver refused it: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(mentions, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter22", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Numeric_w_maps_to_a_count()
    {
        var c = MongoDriverSettings.Build(new MongoSettings { Replication = new() { WriteConcern = new() { W = "2" } } });
        Assert.Equal(new WriteConcern.WCount(2), c.WriteConcern.W);
        Assert.Null(c.WriteConcern.Journal);
    }
}

public sealed class RealServerTests
{
    [Fact]
    public async Task Ping_reports_version()
    {
        if (TestServers.Mongo is not { } mongo)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        using var client = new MongoDB.Driver.MongoClient(MongoDriverSettings.Build(mongo));
        var ping = Assert.Single(await MongoPing.PingAsync(client, TestContext.Current.CancellationToken));
        Assert.True(ping.Reachable, ping.Error);
    }
}
