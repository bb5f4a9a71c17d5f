using Npgsql;
using Polystore.Core.Configuration;

namespace Polystore.Postgres.Tests;

public sealed class ConnectionMappingTests
{
    private static PostgresSettings Yaml() => new()
    {
        Connection = new() { Host = "db", Port = 5433, Database = "myapp", User = "app", Password = "pw", Sslmode = PostgresSslMode.Require, ApplicationName = "myapp" },
        Pool = new() { MinSize = 10, MaxSize = 50, MaxOverflow = 20, PoolRecycle = 3600, PoolPrePing = true, PoolTimeout = 30 },
        Performance = new() { StatementCacheSize = 1024, PreparedStatementCacheSize = 256 },
        Replication = new() { ReadReplicas = [new() { Host = "replica1.db.local", Port = 5432 }, new() { Host = "replica2.db.local", Port = 5432 }] },
    };

    [Fact]
    public void Yaml_settings_map_to_npgsql()
    {
        var b = PostgresDriverSettings.Build(Yaml());
        Assert.Equal("db:5433,replica1.db.local:5432,replica2.db.local:5432", b.Host);
        Assert.Equal(("myapp", "app", "pw", SslMode.Require, "myapp"), (b.Database, b.Username, b.Password, b.SslMode, b.ApplicationName));
        Assert.Equal((10, 70), (b.MinPoolSize, b.MaxPoolSize));
        Assert.Equal(3600, b.ConnectionLifetime);
        Assert.Equal(30, b.Timeout);
        Assert.Equal(256, b.MaxAutoPrepare);
        Assert.Equal("-c jit=off", b.Options);
        Assert.True(b.LoadBalanceHosts);
        Assert.Equal(PostgresDriverSettings.PrePingKeepAliveSeconds, b.KeepAlive);
    }

    [Fact]
    public void Statement_cache_zero_turns_preparation_off_for_pgbouncer()
    {
        var settings = Yaml();
        settings = new PostgresSettings { Connection = settings.Connection, Performance = new() { StatementCacheSize = 0, PreparedStatementCacheSize = 256, Jit = true } };
        var b = PostgresDriverSettings.Build(settings);
        Assert.Equal(0, b.MaxAutoPrepare);
        Assert.Null(b.Options);
        Assert.False(b.LoadBalanceHosts);
    }
}
