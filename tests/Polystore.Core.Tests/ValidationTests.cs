using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

public sealed class ValidationTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    private static ConfigException Fails(params (string File, string Yaml)[] files)
    {
        using var folder = new ConfigFolder(files);
        return Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, NoEnvironment));
    }

    [Fact]
    public void Unknown_key_suggests_the_closest_one()
    {
        var e = Fails(("postgresql.yaml", """
            connection:
              host: db
            pool:
              max_szie: 10
            """));
        var error = Assert.Single(e.Errors);
        Assert.Equal(("postgresql.yaml", 4, 3, "pool.max_szie"), (error.Source.File, error.Source.Line, error.Source.Column, error.KeyPath));
        Assert.Contains("did you mean 'max_size'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_section_lists_the_known_ones_when_nothing_is_close()
    {
        var e = Fails(("redis.yaml", "replication:\n  x: 1\n"));
        var error = Assert.Single(e.Errors);
        Assert.Contains("connection, pool, cluster, sentinel, tls", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_problem_in_every_file_is_reported_at_once()
    {
        var e = Fails(
            ("postgresql.yaml", """
                connection:
                  port: fifty
                  sslmode: requre
                pool:
                  pool_pre_ping: maybe
                replication:
                  load_balance: random
                """),
            ("mongodb.yaml", """
                replication:
                  read_preference: secondary_preferred
                """),
            ("redis.yaml", """
                pool:
                  socket_timeout: [1, 2]
                """));

        Assert.Equal(
        [
            ("mongodb.yaml", 2, "replication.read_preference"),
            ("postgresql.yaml", 2, "connection.port"),
            ("postgresql.yaml", 3, "connection.sslmode"),
            ("postgresql.yaml", 5, "pool.pool_pre_ping"),
            ("postgresql.yaml", 7, "replication.load_balance"),
            ("redis.yaml", 2, "pool.socket_timeout"),
        ], e.Errors.Select(x => (x.Source.File!, x.Source.Line, x.KeyPath)));
        Assert.Contains("expected a whole number, got 'fifty'", e.Errors[1].Message, StringComparison.Ordinal);
        Assert.Contains("did you mean 'require'", e.Errors[2].Message, StringComparison.Ordinal);
        Assert.Contains("did you mean 'secondaryPreferred'", e.Errors[0].Message, StringComparison.Ordinal);
        Assert.Contains("round_robin, none", e.Errors[4].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Inconsistent_and_negative_numbers_are_rejected_with_their_keys()
    {
        var e = Fails(("postgresql.yaml", """
            pool:
              min_size: 60
              max_size: 50
              max_overflow: -1
            """), ("mongodb.yaml", """
            pool:
              max_pool_size: 5
              min_pool_size: 10
            replication:
              write_concern:
                w: most
                wtimeout: -5
            """));
        var keys = e.Errors.Select(x => $"{x.Source.File}:{x.Source.Line}:{x.KeyPath}").ToList();
        Assert.Contains("postgresql.yaml:2:pool.min_size", keys);
        Assert.Contains("postgresql.yaml:4:pool.max_overflow", keys);
        Assert.Contains("mongodb.yaml:3:pool.min_pool_size", keys);
        Assert.Contains("mongodb.yaml:6:replication.write_concern.w", keys);
        Assert.Contains("mongodb.yaml:7:replication.write_concern.wtimeout", keys);
        Assert.Contains(e.Errors, x => x.Message.Contains("min_size (60) is larger than max_size (50)", StringComparison.Ordinal));
    }

    [Fact]
    public void Redis_topology_rules_are_checked()
    {
        var e = Fails(("redis.yaml", """
            cluster:
              enabled: true
              nodes: []
            sentinel:
              enabled: true
            """));
        var messages = e.Errors.Select(x => $"{x.KeyPath}: {x.Message}").ToList();
        Assert.Contains(messages, m => m.StartsWith("cluster.enabled: cluster and sentinel cannot both be enabled", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("cluster.nodes:", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("sentinel.master_name:", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("sentinel.sentinels:", StringComparison.Ordinal));
    }

    [Fact]
    public void A_sentinel_password_different_from_the_servers_is_refused_without_showing_either()
    {
        var e = Fails(("redis.yaml", """
            connection:
              password: server-secret-1
            sentinel:
              enabled: true
              master_name: main
              sentinels: [{ host: 127.0.0.1, port: 26379 }]
              password: sentinel-secret-2
            """));
        var error = Assert.Single(e.Errors);
        Assert.Equal("sentinel.password", error.KeyPath);
        Assert.Contains("one password", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Yaml_syntax_errors_name_the_line()
    {
        var e = Fails(("redis.yaml", "connection:\n  url: redis://x:1\n   db: [\n"));
        var error = Assert.Single(e.Errors);
        Assert.Equal("redis.yaml", error.Source.File);
        Assert.InRange(error.Source.Line, 2, 4);
        Assert.StartsWith("YAML syntax error", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Duplicate_keys_are_reported()
    {
        var e = Fails(("postgresql.yaml", "pool:\n  max_size: 1\n  max_size: 2\n"));
        var error = Assert.Single(e.Errors);
        Assert.Equal(3, error.Source.Line);
    }

    [Fact]
    public void An_empty_folder_is_an_error_not_an_empty_config()
    {
        var e = Fails();
        Assert.Contains("no store is configured", Assert.Single(e.Errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_folder_says_how_to_fix_it()
    {
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load("/nonexistent/polystore", NoEnvironment));
        Assert.Contains("'/nonexistent/polystore' does not exist", e.Message, StringComparison.Ordinal);
        Assert.Contains("postgresql.yaml", e.Message, StringComparison.Ordinal);
    }
}
