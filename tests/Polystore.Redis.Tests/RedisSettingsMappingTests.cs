using Polystore.Core.Configuration;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed class RedisSettingsMappingTests
{
    // The validator accepts rediss:// cluster nodes, but Ssl comes from connection.url only (default redis://).
    [Fact]
    public void Cluster_rediss_nodes_turn_tls_on()
    {
        var o = RedisDriverSettings.Build(new RedisSettings
        {
            Cluster = new() { Enabled = true, Nodes = ["rediss://node1:6380", "rediss://node2:6380"] },
        });
        Assert.True(o.Ssl);
    }

    // A user inside a node URL is dropped (its password is kept): ACL auth then fails.
    [Fact]
    public void Cluster_node_user_is_used()
    {
        var o = RedisDriverSettings.Build(new RedisSettings
        {
            Cluster = new() { Enabled = true, Nodes = ["redis://alice:s3cret@node1:6379"] },
        });
        Assert.Equal(("alice", "s3cret"), (o.User, o.Password));
    }

    // The README: "a path /N selects the database" for connection.url; with sentinel the path is validated but ignored.
    [Fact]
    public void Sentinel_honours_the_url_database()
    {
        var o = RedisDriverSettings.Build(new RedisSettings
        {
            Connection = new() { Url = "redis://localhost:6379/2" },
            Sentinel = new() { Enabled = true, MasterName = "m", Sentinels = [new RedisHost { Host = "s1", Port = 26379 }] },
        });
        Assert.Equal(2, o.DefaultDatabase);
    }

    // The validator accepts any timeout > 0 s, but under 0.5 ms it rounds to 0 ms.
    [Fact]
    public void Tiny_positive_socket_timeout_is_not_zero()
    {
        var o = RedisDriverSettings.Build(new RedisSettings { Pool = new() { SocketTimeout = 0.0004, ConnectionTimeout = 0.0004 } });
        Assert.True(o.SyncTimeout > 0 && o.AsyncTimeout > 0 && o.ConnectTimeout > 0, $"{o.SyncTimeout} {o.AsyncTimeout} {o.ConnectTimeout}");
    }

    // The files are read again when the options are built: one gone since the configuration loaded is named, not ignored.
    [Fact]
    public void A_tls_file_gone_since_loading_is_named_when_the_options_are_built()
    {
        var missing = Path.Combine(Path.GetTempPath(), "polystore-no-such-ca-" + Guid.NewGuid().ToString("N") + ".pem");
        var e = Assert.Throws<ConfigException>(() => RedisDriverSettings.Build(new RedisSettings
        {
            Connection = new() { Url = "rediss://127.0.0.1:6380" },
            Tls = new() { CaCertificate = missing },
        }));
        var error = Assert.Single(e.Errors);
        Assert.Equal(("redis.yaml", "tls.ca_certificate"), (error.Source.File, error.KeyPath));
        Assert.Contains($"'{missing}' does not exist", error.Message, StringComparison.Ordinal);
    }
}
