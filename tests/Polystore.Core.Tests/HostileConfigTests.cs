using System.Diagnostics;
using System.Text;
using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

/// <summary>
/// Config files a real deployment never has and an attacker or a careless operator easily makes: each is refused
/// with one error naming the file (and the limit), never an exhausted process, a hang or a stack overflow.
/// </summary>
public sealed class HostileConfigTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    private static ConfigError FailsWith(string directory)
    {
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(directory, NoEnvironment));
        return e.Errors[0];
    }

    private static ConfigError Fails(string yaml)
    {
        using var folder = new ConfigFolder();
        File.WriteAllText(Path.Combine(folder.Path, "redis.yaml"), yaml);
        return FailsWith(folder.Path);
    }

    [Fact]
    public void An_alias_bomb_is_refused_at_its_first_anchor()
    {
        var yaml = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i < 12; i++) yaml.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 10))}]\n");
        var error = Fails(yaml.ToString());
        Assert.Equal(("redis.yaml", 1), (error.Source.File, error.Source.Line));
        Assert.Contains("anchors", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_alias_alone_is_refused_too()
    {
        var error = Fails("connection:\n  url: *elsewhere\n");
        Assert.Contains("aliases", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fifteen_thousand_nested_brackets_are_refused_without_a_stack_overflow()
    {
        var error = Fails(new string('[', 15_000) + new string(']', 15_000));
        Assert.Contains($"more than {YamlConfigReader.MaxDepth} levels", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deep_mappings_are_refused_and_name_the_path()
    {
        var yaml = new StringBuilder();
        for (var i = 0; i < 40; i++) yaml.Append(new string(' ', i * 2)).Append($"k{i}:\n");
        var error = Fails(yaml.ToString());
        Assert.Contains("levels deep", error.Message, StringComparison.Ordinal);
        Assert.StartsWith("k0.k1.k2", error.KeyPath, StringComparison.Ordinal);
    }

    [Fact]
    public void Too_many_keys_are_refused_in_linear_time()
    {
        var yaml = new StringBuilder("pool:\n");
        for (var i = 0; i < 60_000; i++) yaml.Append("  k").Append(i).Append(": 1\n");
        var error = Fails(yaml.ToString());
        Assert.Contains("more than 100,000 values", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Many_unknown_keys_are_each_reported()
    {
        var yaml = new StringBuilder("pool:\n");
        for (var i = 0; i < 20_000; i++) yaml.Append("  k").Append(i).Append(": 1\n");
        using var folder = new ConfigFolder(("redis.yaml", yaml.ToString()));
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, NoEnvironment));
        Assert.Equal(20_000, e.Errors.Count);
    }

    [Fact]
    public void Duplicate_keys_are_each_named()
    {
        var error = Fails("connection:\n  url: redis://a:6379\n  url: redis://b:6379\n");
        Assert.Equal(("connection.url", 3), (error.KeyPath, error.Source.Line));
        Assert.Contains("appears twice", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_over_the_size_limit_is_refused_unread()
    {
        var error = Fails("# " + new string('x', ConfigFileReader.MaxBytes) + "\n");
        Assert.Contains("larger than 1024 KiB", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_that_is_not_utf8_is_refused()
    {
        using var folder = new ConfigFolder();
        File.WriteAllBytes(Path.Combine(folder.Path, "redis.yaml"), [.. "connection:\n  url: "u8, 0xC3, 0x28, (byte)'\n']);
        var error = FailsWith(folder.Path);
        Assert.Contains("not UTF-8", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_directory_named_like_a_config_file_is_an_error_not_an_absent_store()
    {
        using var folder = new ConfigFolder(("redis.yaml", "connection:\n  url: redis://localhost:6379\n"));
        Directory.CreateDirectory(Path.Combine(folder.Path, "postgresql.yaml"));
        var error = FailsWith(folder.Path);
        Assert.Equal("postgresql.yaml", error.Source.File);
        Assert.Contains("is a directory", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Special_files_and_broken_links_are_refused_without_reading_them()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("FIFOs and /dev/zero are Linux files");
        using var folder = new ConfigFolder();
        using (var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", Path.Combine(folder.Path, "postgresql.yaml")) { UseShellExecute = false })!)
            mkfifo.WaitForExit();
        Assert.Contains("not a regular file", FailsWith(folder.Path).Message, StringComparison.Ordinal);

        File.Delete(Path.Combine(folder.Path, "postgresql.yaml"));
        File.CreateSymbolicLink(Path.Combine(folder.Path, "postgresql.yaml"), "/dev/zero");
        Assert.Contains("not a regular file", FailsWith(folder.Path).Message, StringComparison.Ordinal);

        File.Delete(Path.Combine(folder.Path, "postgresql.yaml"));
        File.CreateSymbolicLink(Path.Combine(folder.Path, "postgresql.yaml"), Path.Combine(folder.Path, "nowhere.yaml"));
        Assert.Contains("does not exist", FailsWith(folder.Path).Message, StringComparison.Ordinal);

        File.Delete(Path.Combine(folder.Path, "postgresql.yaml"));
        File.CreateSymbolicLink(Path.Combine(folder.Path, "postgresql.yaml"), Path.Combine(folder.Path, "loop.yaml"));
        File.CreateSymbolicLink(Path.Combine(folder.Path, "loop.yaml"), Path.Combine(folder.Path, "postgresql.yaml"));
        Assert.Contains("loops", FailsWith(folder.Path).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("${A:-${B}}", "b-value")]
    [InlineData("${A:-${NOPE:-deep}}", "deep")]
    [InlineData("${A:-a}b}", "ab}")]
    [InlineData("${B:-${A}}", "b-value")]
    [InlineData("x$${B}y", "x${B}y")]
    public void Defaults_expand_as_a_shell_would(string reference, string expected)
    {
        var errors = new List<ConfigError>();
        var value = VariableSubstitution.Expand(reference, ConfigSource.Default, "k", name => name == "B" ? "b-value" : null, errors);
        Assert.Empty(errors);
        Assert.Equal(expected, value);
    }

    [Fact]
    public void A_bad_reference_is_an_error_that_does_not_quote_it()
    {
        var errors = new List<ConfigError>();
        VariableSubstitution.Expand("${p@ss-w0rd}", ConfigSource.Default, "connection.password", _ => null, errors);
        var error = Assert.Single(errors);
        Assert.DoesNotContain("p@ss-w0rd", error.Message, StringComparison.Ordinal);
        Assert.Contains("not a variable name", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>Secrets never leave through <c>Describe</c> or an error, whatever they contain and wherever they sit.</summary>
public sealed class SecretMaskingTests
{
    private const string Password = "Pa55 w0rd";

    private static string Everything(PolystoreConfig config) => string.Join("\n", config.Describe().Select(e => $"{e.Store}.{e.Key}={e.Value}"));

    [Theory]
    [InlineData("redis://:PW@127.0.0.1:7000", "redis://***@127.0.0.1:7000")]
    [InlineData("redis://user:PW@host:6379/0", "redis://***@host:6379/0")]
    [InlineData("mongodb://u:PW@h1,h2/db?replicaSet=rs", "mongodb://***@h1,h2/db?replicaSet=rs")]
    [InlineData("redis//:PW@host", "***")]
    [InlineData("mongodb:/u:PW@host", "***")]
    [InlineData("redis://host:6379", "redis://host:6379")]
    [InlineData("mongodb://h1:27017,h2,[::1]:27018/db", "mongodb://h1:27017,h2,[::1]:27018/db")]
    [InlineData("redis://:PW", "redis://***")]
    [InlineData("mongodb://admin:PW", "mongodb://***")]
    [InlineData("postgresql://user:PW/db?sslmode=require", "postgresql://***/db?sslmode=require")]
    [InlineData("redis://[::1]:PW", "redis://***")]
    public void Secret_urls_are_masked_by_structure(string template, string expected)
    {
        Assert.Equal(expected, Redactor.MaskSecretUrl(template.Replace("PW", Password, StringComparison.Ordinal)));
    }

    [Fact]
    public void Cluster_node_urls_and_odd_passwords_never_appear_in_describe()
    {
        using var folder = new ConfigFolder(("redis.yaml", $"""
            connection:
              url: "redis://:{Password}@127.0.0.1:6379"
            cluster:
              enabled: true
              nodes:
                - "redis://:node-s3cret@127.0.0.1:7000"
            """));
        var text = Everything(PolystoreConfig.Load(folder.Path, new Dictionary<string, string>()));
        Assert.DoesNotContain("Pa55", text, StringComparison.Ordinal);
        Assert.DoesNotContain("w0rd", text, StringComparison.Ordinal);
        Assert.DoesNotContain("node-s3cret", text, StringComparison.Ordinal);
        Assert.Contains("redis.cluster.nodes[0]=redis://***@127.0.0.1:7000", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("redis.yaml", "connection:\n  url: \"redis//:{0}@host:6379\"\n")]
    [InlineData("mongodb.yaml", "connection:\n  uri: \"mongodb:/u:{0}@host\"\n  database: d\n")]
    [InlineData("redis.yaml", "cluster:\n  enabled: true\n  nodes: [\"redis:/:{0}@h:7000\"]\n")]
    public void Errors_about_a_malformed_secret_url_do_not_quote_it(string file, string yaml)
    {
        using var folder = new ConfigFolder((file, string.Format(System.Globalization.CultureInfo.InvariantCulture, yaml, Password)));
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, new Dictionary<string, string>()));
        Assert.DoesNotContain("Pa55", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("w0rd", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_value_drawn_from_a_variable_is_not_quoted()
    {
        using var folder = new ConfigFolder(("postgresql.yaml", "connection:\n  port: ${DB_PASSWORD}\n"));
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, new Dictionary<string, string> { ["DB_PASSWORD"] = "hunter22-secret" }));
        var error = Assert.Single(e.Errors);
        Assert.Equal("connection.port", error.KeyPath);
        Assert.DoesNotContain("hunter22", error.Message, StringComparison.Ordinal);
        Assert.Contains("environment variable", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("POLYSTORE__POSTGRES__POOL__MAX_SIZE", "hunter22-secret")]
    [InlineData("POLYSTORE__POSTGRES__CONNECTION__SSLMODE", "hunter22-secret")]
    [InlineData("POLYSTORE_POSTGRES_URL", "postgresql://u:pw@h/db?sslmode=hunter22-secret")]
    [InlineData("POLYSTORE_POSTGRES_URL", "postgresql://user:hunter22-secret/db")]
    [InlineData("POLYSTORE_REDIS_URL", "redis://:hunter22-secret")]
    [InlineData("POLYSTORE_MONGO_URL", "mongodb://admin:hunter22-secret")]
    public void A_bad_value_from_an_override_variable_is_not_quoted(string variable, string value)
    {
        using var folder = new ConfigFolder(("postgresql.yaml", "connection:\n  host: h\n"), ("mongodb.yaml", "connection:\n  database: d\n"), ("redis.yaml", "connection:\n  db: 0\n"));
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, new Dictionary<string, string> { [variable] = value }));
        Assert.DoesNotContain("hunter22", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_write_concern_drawn_from_a_variable_is_not_quoted()
    {
        using var folder = new ConfigFolder(("mongodb.yaml", "connection:\n  database: d\nreplication:\n  write_concern:\n    w: ${WC}\n"));
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, new Dictionary<string, string> { ["WC"] = "hunter22-secret" }));
        Assert.Equal("replication.write_concern.w", Assert.Single(e.Errors).KeyPath);
        Assert.DoesNotContain("hunter22", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_config_lists_its_secrets_for_masking_elsewhere()
    {
        using var folder = new ConfigFolder(("redis.yaml", $"connection:\n  url: \"redis://:{Password}@127.0.0.1:6379\"\n"));
        var secrets = PolystoreConfig.Load(folder.Path, new Dictionary<string, string>()).Secrets();
        Assert.Contains(Password, secrets);
    }
}

/// <summary>Values that pass a naive range check but break a driver later are caught by validation, naming the key.</summary>
public sealed class DriverLimitTests
{
    [Theory]
    [InlineData("postgresql.yaml", "pool:\n  pool_timeout: 5000\n", "pool.pool_timeout", "1,024")]
    [InlineData("postgresql.yaml", "pool:\n  max_size: 2147483647\n  max_overflow: 10\n", "pool.max_size", "10,000")]
    [InlineData("postgresql.yaml", "pool:\n  max_size: 9000\n  max_overflow: 2000\n", "pool.max_overflow", "10,000")]
    [InlineData("postgresql.yaml", "connection:\n  command_timeout: 2147483647\n", "connection.command_timeout", "2,147,483")]
    [InlineData("redis.yaml", "connection:\n  url: redis://127.0.0.1:6379/abc\n", "connection.url", "database number")]
    [InlineData("redis.yaml", "pool:\n  socket_timeout: 1e12\n", "pool.socket_timeout", "2,147,483")]
    [InlineData("redis.yaml", "pool:\n  connection_timeout: .inf\n", "pool.connection_timeout", "")]
    [InlineData("redis.yaml", "connection:\n  url: redis://127.0.0.1:0\n", "connection.url", "redis://host:port")]
    [InlineData("postgresql.yaml", "connection:\n  database: \"poly\\0store\"\n", "connection.database", "NUL")]
    [InlineData("postgresql.yaml", "connection:\n  application_name: \"a\\0b\"\n", "connection.application_name", "NUL")]
    [InlineData("mongodb.yaml", "connection:\n  uri: \"mongodb://u:p@127.0.0.1:99999/\"\n  database: d\n", "connection.uri", "1-65535")]
    [InlineData("mongodb.yaml", "connection:\n  uri: \"mongodb://u:p@/\"\n  database: d\n", "connection.uri", "no host")]
    [InlineData("mongodb.yaml", "connection:\n  uri: \"mongodb://h1,,h2/\"\n  database: d\n", "connection.uri", "empty or malformed host")]
    [InlineData("mongodb.yaml", "connection:\n  uri: \"mongodb+srv://u:p@h:5/\"\n  database: d\n", "connection.uri", "cannot have a port")]
    [InlineData("mongodb.yaml", "connection:\n  uri: \"mongodb+srv://h1,h2/\"\n  database: d\n", "connection.uri", "one host")]
    public void A_value_the_driver_would_reject_later_is_a_config_error_now(string file, string yaml, string key, string mentions)
    {
        using var folder = new ConfigFolder((file, yaml));
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, new Dictionary<string, string>()));
        var error = Assert.Single(e.Errors, x => x.KeyPath == key);
        Assert.Equal(file, error.Source.File);
        Assert.Contains(mentions, error.Message, StringComparison.Ordinal);
    }
}
