using System.Net;
using Polystore.Core.Configuration;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed class ConnectionMappingTests
{
    private static string Endpoints(ConfigurationOptions o) => string.Join(",", o.EndPoints.Select(RedisPing.Format));

    [Fact]
    public void Standalone_url_password_db_and_timeouts()
    {
        var o = RedisDriverSettings.Build(new RedisSettings
        {
            Connection = new() { Url = "rediss://user:urlpw@cache.local:6380", Password = "yamlpw", Db = 3 },
            Pool = new() { ConnectionTimeout = 5, SocketTimeout = 2.5 },
        });
        Assert.Equal("cache.local:6380", Endpoints(o));
        Assert.True(o.Ssl);
        Assert.Equal(("user", "yamlpw", 3), (o.User, o.Password, o.DefaultDatabase));
        Assert.Equal((5000, 2500, 2500), (o.ConnectTimeout, o.SyncTimeout, o.AsyncTimeout));
        Assert.False(o.AbortOnConnectFail);
        Assert.Null(o.ServiceName);
    }

    [Fact]
    public void Cluster_uses_every_node()
    {
        var o = RedisDriverSettings.Build(new RedisSettings
        {
            Cluster = new() { Enabled = true, Nodes = ["redis://node1:6379", "redis://node2:6379", "redis://node3:6379"] },
        });
        Assert.Equal("node1:6379,node2:6379,node3:6379", Endpoints(o));
    }

    [Fact]
    public void Sentinel_sets_the_service_name_and_sentinel_endpoints()
    {
        var o = RedisDriverSettings.Build(new RedisSettings
        {
            Sentinel = new() { Enabled = true, MasterName = "mymaster", Sentinels = [new() { Host = "sentinel1", Port = 26379 }] },
        });
        Assert.Equal("mymaster", o.ServiceName);
        Assert.Equal("sentinel1:26379", Endpoints(o));
    }
}

public sealed class RealServerTests
{
    [Fact]
    public async Task Standalone_ping_reports_version_and_round_trip()
    {
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        var ping = Assert.Single(await RedisPing.PingAsync(multiplexer, TestContext.Current.CancellationToken));
        Assert.True(ping.Reachable, ping.Error);
        Assert.Equal("primary", ping.Details);
        Assert.StartsWith("7.", ping.ServerVersion, StringComparison.Ordinal);
        Assert.NotNull(ping.RoundTrip);
    }

    [Fact]
    public async Task Cluster_ping_sees_three_primaries_and_their_replicas()
    {
        var cluster = TestServers.RedisCluster;
        Assert.NotNull(cluster);
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(cluster));
        var pings = await RedisPing.PingAsync(multiplexer, TestContext.Current.CancellationToken);
        Assert.All(pings, p => Assert.True(p.Reachable, p.Error));
        Assert.Equal(3, pings.Count(p => p.Details == "cluster primary"));
        Assert.Equal(3, pings.Count(p => p.Details == "cluster replica"));
    }

    [Fact]
    public async Task Wrong_password_is_reported_without_the_password()
    {
        var s = TestServers.Redis;
        var wrong = new RedisSettings { Connection = new() { Url = s.Connection.Url, Password = "definitely-wrong-pw" }, Pool = new() { ConnectionTimeout = 2, SocketTimeout = 2 } };
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(wrong));
        var ping = Assert.Single(await RedisPing.PingAsync(multiplexer, TestContext.Current.CancellationToken));
        Assert.False(ping.Reachable);
        Assert.DoesNotContain("definitely-wrong-pw", ping.Error, StringComparison.Ordinal);
    }
}
