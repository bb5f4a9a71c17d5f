using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

public sealed class EnvironmentTests
{
    [Fact]
    public void Variables_with_defaults_are_typed_after_substitution()
    {
        using var folder = new ConfigFolder(("postgresql.yaml", """
            connection:
              host: ${PGHOST:-db.local}
              port: ${PGPORT:-6543}
              database: app_${STAGE}
              user: "$${literal}"
            """));
        var config = PolystoreConfig.Load(folder.Path, new Dictionary<string, string> { ["STAGE"] = "prod", ["PGHOST"] = "" });
        Assert.Equal(("db.local", 6543, "app_prod", "${literal}"), (config.Postgres!.Connection.Host, config.Postgres.Connection.Port, config.Postgres.Connection.Database, config.Postgres.Connection.User));
    }

    [Fact]
    public void A_key_override_wins_over_the_file_and_is_validated_like_it()
    {
        using var folder = new ConfigFolder(("postgresql.yaml", "pool:\n  max_size: 10\n"));
        var config = PolystoreConfig.Load(folder.Path, new Dictionary<string, string> { ["POLYSTORE__POSTGRES__POOL__MAX_SIZE"] = "80" });
        Assert.Equal(80, config.Postgres!.Pool.MaxSize);
        Assert.Equal("POLYSTORE__POSTGRES__POOL__MAX_SIZE", config.SourceOf(StoreNames.Postgres, "pool.max_size").EnvironmentVariable);

        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, new Dictionary<string, string> { ["POLYSTORE__POSTGRES__POOL__MAX_SIEZ"] = "80" }));
        var error = Assert.Single(e.Errors);
        Assert.Equal("POLYSTORE__POSTGRES__POOL__MAX_SIEZ", error.Source.EnvironmentVariable);
        Assert.Contains("did you mean 'max_size'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void One_url_per_store_configures_it_without_a_file()
    {
        using var folder = new ConfigFolder(("redis.yaml", "connection:\n  db: 2\n"));
        var config = PolystoreConfig.Load(folder.Path, new Dictionary<string, string>
        {
            ["POLYSTORE_POSTGRES_URL"] = "postgresql://svc:p%40ss@pg.internal:6432/orders?sslmode=verify-full&application_name=api",
            ["POLYSTORE_MONGO_URL"] = "mongodb://u:pw@m1:27017,m2:27017/analytics?replicaSet=rs0",
            ["POLYSTORE_REDIS_URL"] = "rediss://:rpw@cache:6380",
        });
        var pg = config.Postgres!.Connection;
        Assert.Equal(("pg.internal", 6432, "orders", "svc", "p@ss", PostgresSslMode.VerifyFull, "api"), (pg.Host, pg.Port, pg.Database, pg.User, pg.Password, pg.Sslmode, pg.ApplicationName));
        Assert.Equal("analytics", config.Mongo!.Connection.Database);
        Assert.Equal("rediss://:rpw@cache:6380", config.Redis!.Connection.Url);
        Assert.Equal(2, config.Redis.Connection.Db);

        var described = string.Join("\n", config.Describe().Select(e => e.Value));
        Assert.DoesNotContain("p@ss", described, StringComparison.Ordinal);
        Assert.DoesNotContain(":pw@", described, StringComparison.Ordinal);
        Assert.DoesNotContain("rpw", described, StringComparison.Ordinal);
        Assert.Contains("mongodb://***@m1:27017,m2:27017/analytics?replicaSet=rs0", described, StringComparison.Ordinal);
    }

    [Fact]
    public void A_malformed_url_is_reported_without_its_password()
    {
        using var folder = new ConfigFolder();
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, new Dictionary<string, string>
        {
            ["POLYSTORE_POSTGRES_URL"] = "mysql://root:hunter22@db/app",
        }));
        Assert.DoesNotContain("hunter22", e.Message, StringComparison.Ordinal);
        Assert.Equal("POLYSTORE_POSTGRES_URL", e.Errors[0].Source.EnvironmentVariable);
    }
}
