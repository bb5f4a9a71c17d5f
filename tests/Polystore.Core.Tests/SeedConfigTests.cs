using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

/// <summary>The three example YAML files (config/) load with the variables they name.</summary>
public sealed class SeedConfigTests
{
    private static readonly Dictionary<string, string> SeedEnvironment = new()
    {
        ["DB_USER"] = "app",
        ["DB_PASSWORD"] = "pg-secret-value",
        ["REDIS_PASSWORD"] = "redis-secret-value",
    };

    [Fact]
    public void Seed_files_load_and_every_key_is_bound()
    {
        var config = PolystoreConfig.Load(ConfigFolder.RepoFile("config"), SeedEnvironment);

        var pg = config.Postgres!;
        Assert.Equal("localhost", pg.Connection.Host);
        Assert.Equal(5432, pg.Connection.Port);
        Assert.Equal("myapp", pg.Connection.Database);
        Assert.Equal("app", pg.Connection.User);
        Assert.Equal("pg-secret-value", pg.Connection.Password);
        Assert.Equal(PostgresSslMode.Require, pg.Connection.Sslmode);
        Assert.Equal((10, 50, 20, 3600, true, 30), (pg.Pool.MinSize, pg.Pool.MaxSize, pg.Pool.MaxOverflow, pg.Pool.PoolRecycle, pg.Pool.PoolPrePing, pg.Pool.PoolTimeout));
        Assert.Equal((1024, 256), (pg.Performance.StatementCacheSize, pg.Performance.PreparedStatementCacheSize));
        Assert.Equal(["replica1.db.local:5432", "replica2.db.local:5432"], pg.Replication.ReadReplicas.Select(r => $"{r.Host}:{r.Port}"));
        Assert.Equal(PostgresLoadBalance.RoundRobin, pg.Replication.LoadBalance);

        var mongo = config.Mongo!;
        Assert.Equal("mongodb://localhost:27017", mongo.Connection.Uri);
        Assert.Equal("myapp", mongo.Connection.Database);
        Assert.Equal((100, 10, 60000, 10000), (mongo.Pool.MaxPoolSize, mongo.Pool.MinPoolSize, mongo.Pool.MaxIdleTimeMs, mongo.Pool.WaitQueueTimeoutMs));
        Assert.Equal("rs0", mongo.Replication.ReplicaSet);
        Assert.Equal(MongoReadPreference.SecondaryPreferred, mongo.Replication.ReadPreference);
        Assert.Equal(("majority", true, 5000), (mongo.Replication.WriteConcern.W, mongo.Replication.WriteConcern.J, mongo.Replication.WriteConcern.Wtimeout));
        Assert.Equal((true, "user_id", 64), (mongo.Sharding.Enabled, mongo.Sharding.ShardKey, mongo.Sharding.ChunkSizeMb));

        var redis = config.Redis!;
        Assert.Equal("redis://localhost:6379", redis.Connection.Url);
        Assert.Equal("redis-secret-value", redis.Connection.Password);
        Assert.Equal(0, redis.Connection.Db);
        Assert.Equal((100, 10, 50, 5.0, 5.0), (redis.Pool.MaxConnections, redis.Pool.MinIdle, redis.Pool.MaxIdle, redis.Pool.ConnectionTimeout, redis.Pool.SocketTimeout));
        Assert.False(redis.Cluster.Enabled);
        Assert.Equal(3, redis.Cluster.Nodes.Count);
        Assert.False(redis.Sentinel.Enabled);
        Assert.Equal("mymaster", redis.Sentinel.MasterName);
        Assert.Equal(("sentinel1", 26379), (redis.Sentinel.Sentinels[0].Host, redis.Sentinel.Sentinels[0].Port));
    }

    [Fact]
    public void Seed_files_without_their_variables_report_each_missing_one_with_file_line_and_key()
    {
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(ConfigFolder.RepoFile("config"), new Dictionary<string, string>()));

        Assert.Collection(e.Errors,
            x => Assert.Equal(("postgresql.yaml", 6, "connection.user"), (x.Source.File, x.Source.Line, x.KeyPath)),
            x => Assert.Equal(("postgresql.yaml", 7, "connection.password"), (x.Source.File, x.Source.Line, x.KeyPath)),
            x => Assert.Equal(("redis.yaml", 4, "connection.password"), (x.Source.File, x.Source.Line, x.KeyPath)));
        Assert.All(e.Errors, x => Assert.Contains("is not set", x.Message, StringComparison.Ordinal));
        Assert.Contains("DB_USER", e.Errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_masks_every_secret()
    {
        var config = PolystoreConfig.Load(ConfigFolder.RepoFile("config"), SeedEnvironment);
        var text = string.Join("\n", config.Describe().Select(e => $"{e.Store}.{e.Key}={e.Value}"));

        Assert.DoesNotContain("pg-secret-value", text, StringComparison.Ordinal);
        Assert.DoesNotContain("redis-secret-value", text, StringComparison.Ordinal);
        Assert.Contains("postgres.connection.password=***", text, StringComparison.Ordinal);
        Assert.Contains("postgres.pool.max_size=50", text, StringComparison.Ordinal);
        Assert.Equal(new ConfigSource("postgresql.yaml", 12, 3), config.SourceOf(StoreNames.Postgres, "pool.max_size"));
    }
}
