using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;
using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

/// <summary>
/// The stores configured the .NET way (appsettings.json, environment variables, a YAML folder as one more source)
/// meet the same binder and validator as the YAML folder: the same bad value gets the same message, naming where it
/// was written.
/// </summary>
public sealed class ConfigurationSourceTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    // The same mistakes, written four ways: a word for a number, a misspelt enum value, a misspelt key (bind errors),
    // a pool of 0 and an unknown write concern (range rules).
    private static readonly (string File, string Yaml)[] BadYaml =
    [
        ("postgresql.yaml", "connection:\n  port: fifty\n  sslmode: requre\npool:\n  max_szie: 10\n"),
        ("redis.yaml", "pool:\n  max_connections: 0\n"),
        ("mongodb.yaml", "replication:\n  write_concern:\n    w: most\n"),
    ];

    private const string BadJson = """
        {
          "Logging": { "LogLevel": { "Default": "Information" } },
          "Polystore": {
            "Postgres": { "Connection": { "Port": "fifty", "Sslmode": "requre" }, "Pool": { "max_szie": 10 } },
            "Redis": { "Pool": { "MaxConnections": 0 } },
            "Mongo": { "Replication": { "WriteConcern": { "W": "most" } } }
          }
        }
        """;

    private static readonly Dictionary<string, string> BadVariables = new()
    {
        ["Polystore__Postgres__Connection__Port"] = "fifty",
        ["Polystore__Postgres__Connection__Sslmode"] = "requre",
        ["Polystore__Postgres__Pool__max_szie"] = "10",
        ["Polystore__Redis__Pool__MaxConnections"] = "0",
        ["Polystore__Mongo__Replication__WriteConcern__W"] = "most",
    };

    [Fact]
    public void The_same_bad_values_give_the_same_errors_from_yaml_json_and_environment_each_naming_its_source_and_no_variable_value()
    {
        ConfigException fromFolder, fromYamlSource, fromJson, fromEnvironment;
        using (var folder = new ConfigFolder(BadYaml))
        {
            fromFolder = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, NoEnvironment));
            fromYamlSource = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(Yaml(folder.Path).GetSection("Polystore")));
        }
        using (var json = new JsonFile(BadJson)) fromJson = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(json.Configuration.GetSection("Polystore")));
        using (var environment = new EnvironmentVariables(BadVariables)) fromEnvironment = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(environment.Configuration.GetSection("Polystore")));

        string[] expected =
        [
            "connection.port: expected a whole number, got 'fifty'",
            "connection.sslmode: 'requre' is not valid here; expected one of: disable, allow, prefer, require, verify-ca, verify-full (did you mean 'require'?)",
            "pool.max_connections: 0 is too small; must be 1 or more",
            "pool.max_szie: unknown key 'max_szie'; did you mean 'max_size'?",
            "replication.write_concern.w: must be majority or a number of members (0, 1, 2, ...)",
        ];
        foreach (var e in new[] { fromFolder, fromYamlSource, fromJson })
            Assert.Equal(expected, e.Errors.Select(x => $"{x.KeyPath}: {x.Message}").Order(StringComparer.Ordinal));
        // The same errors from environment variables, except that the binder never quotes a value a variable set (it may
        // be a secret in the wrong variable), as with ${VAR} in YAML; the rules on bound values (write_concern.w) never
        // quote one either.
        const string notShown = "a value from an environment variable (not shown)";
        Assert.Equal(
            expected.Select(x => x.Replace("'fifty'", notShown, StringComparison.Ordinal).Replace("'requre'", notShown, StringComparison.Ordinal)),
            fromEnvironment.Errors.Select(x => $"{x.KeyPath}: {x.Message}").Order(StringComparer.Ordinal));

        // Each names its source: the YAML its file, line and column (through the configuration too), the JSON file
        // and the environment variable with the configuration key.
        var port = (ConfigException e) => Assert.Single(e.Errors, x => x.KeyPath == "connection.port");
        Assert.Equal(("postgresql.yaml", 2, 3), (port(fromFolder).Source.File, port(fromFolder).Source.Line, port(fromFolder).Source.Column));
        Assert.Equal(("postgresql.yaml", 2, 3), (port(fromYamlSource).Source.File, port(fromYamlSource).Source.Line, port(fromYamlSource).Source.Column));
        Assert.Equal(port(fromFolder).ToString(), port(fromYamlSource).ToString());
        Assert.Equal("postgresql.yaml:2:3: connection.port: expected a whole number, got 'fifty'", port(fromYamlSource).ToString());

        Assert.Equal(("appsettings.json", "Polystore:Postgres:Connection:Port"), (port(fromJson).Source.File, port(fromJson).Source.ConfigurationKey));
        Assert.Equal("Polystore:Postgres:Connection:Port (appsettings.json): connection.port: expected a whole number, got 'fifty'", port(fromJson).ToString());
        Assert.Contains("Polystore:Postgres:Connection:Port (appsettings.json): connection.port:", fromJson.Message, StringComparison.Ordinal);

        var variable = EnvironmentVariables.LastPrefix + "Polystore__Postgres__Connection__Port";
        Assert.Equal((variable, "Polystore:Postgres:Connection:Port"), (port(fromEnvironment).Source.EnvironmentVariable, port(fromEnvironment).Source.ConfigurationKey));
        Assert.Contains($"Polystore:Postgres:Connection:Port (environment variable {variable}): connection.port:", fromEnvironment.Message, StringComparison.Ordinal);

        // A range rule points at the value it checks, wherever it came from.
        var pool = Assert.Single(fromJson.Errors, x => x.KeyPath == "pool.max_connections");
        Assert.Equal("Polystore:Redis:Pool:MaxConnections", pool.Source.ConfigurationKey);
        var unknown = Assert.Single(fromEnvironment.Errors, x => x.KeyPath == "pool.max_szie");
        Assert.Equal(EnvironmentVariables.LastPrefix + "Polystore__Postgres__Pool__max_szie", unknown.Source.EnvironmentVariable);
    }

    [Fact]
    public void Good_config_from_appsettings_json_binds_exactly_as_the_yaml_folder()
    {
        var seedEnvironment = new Dictionary<string, string> { ["DB_USER"] = "app", ["DB_PASSWORD"] = "pg-secret-value", ["REDIS_PASSWORD"] = "redis-secret-value" };
        var fromFolder = PolystoreConfig.Load(ConfigFolder.RepoFile("config"), seedEnvironment);
        var fromYamlSource = PolystoreConfig.Load(Yaml(ConfigFolder.RepoFile("config"), seedEnvironment).GetSection("Polystore"));
        using var json = new JsonFile("""
            {
              "Polystore": {
                "Postgres": {
                  "Connection": { "Host": "localhost", "Port": 5432, "Database": "myapp", "User": "app", "Password": "pg-secret-value", "Sslmode": "require" },
                  "Pool": { "MinSize": 10, "MaxSize": 50, "MaxOverflow": 20, "PoolRecycle": 3600, "PoolPrePing": true, "PoolTimeout": 30 },
                  "Performance": { "StatementCacheSize": 1024, "PreparedStatementCacheSize": 256 },
                  "Replication": {
                    "ReadReplicas": [ { "Host": "replica1.db.local", "Port": 5432 }, { "Host": "replica2.db.local", "Port": 5432 } ],
                    "LoadBalance": "round_robin"
                  }
                },
                "Mongo": {
                  "Connection": { "Uri": "mongodb://localhost:27017", "Database": "myapp" },
                  "Pool": { "MaxPoolSize": 100, "MinPoolSize": 10, "MaxIdleTimeMs": 60000, "WaitQueueTimeoutMs": 10000 },
                  "Replication": { "ReplicaSet": "rs0", "ReadPreference": "secondaryPreferred", "WriteConcern": { "W": "majority", "J": true, "Wtimeout": 5000 } },
                  "Sharding": { "Enabled": true, "ShardKey": "user_id", "ChunkSizeMb": 64 }
                },
                "Redis": {
                  "Connection": { "Url": "redis://localhost:6379", "Password": "redis-secret-value", "Db": 0 },
                  "Pool": { "MaxConnections": 100, "MinIdle": 10, "MaxIdle": 50, "ConnectionTimeout": 5, "SocketTimeout": 5 },
                  "Cluster": { "Enabled": false, "Nodes": [ "redis://node1:6379", "redis://node2:6379", "redis://node3:6379" ] },
                  "Sentinel": { "Enabled": false, "MasterName": "mymaster", "Sentinels": [ { "Host": "sentinel1", "Port": 26379 } ] }
                }
              }
            }
            """);
        var fromJson = PolystoreConfig.Load(json.Configuration.GetSection("Polystore"));

        Assert.Equal(Settings(fromFolder), Settings(fromJson));
        Assert.Equal(Settings(fromFolder), Settings(fromYamlSource));
        Assert.Equal(fromFolder.Secrets(), fromJson.Secrets());
        // The JSON's values are traced to their keys; the YAML's to their lines, through the configuration as directly.
        Assert.Equal("Polystore:Postgres:Pool:MaxSize (appsettings.json)", fromJson.SourceOf(StoreNames.Postgres, "pool.max_size").ToString());
        Assert.Equal((12, 3), (fromYamlSource.SourceOf(StoreNames.Postgres, "pool.max_size").Line, fromYamlSource.SourceOf(StoreNames.Postgres, "pool.max_size").Column));
    }

    [Fact]
    public void PascalCase_and_snake_case_keys_and_enum_names_bind_alike()
    {
        var snake = PolystoreConfig.Load(Memory(new()
        {
            ["Polystore:Postgres:connection:application_name"] = "api",
            ["Polystore:Postgres:connection:sslmode"] = "verify-full",
            ["Polystore:Postgres:pool:max_size"] = "42",
            ["Polystore:Postgres:replication:read_replicas:0:host"] = "r1",
            ["Polystore:Postgres:replication:load_balance"] = "none",
            ["Polystore:Mongo:replication:read_preference"] = "secondaryPreferred",
        }).GetSection("Polystore"));
        var pascal = PolystoreConfig.Load(Memory(new()
        {
            ["POLYSTORE:POSTGRES:Connection:ApplicationName"] = "api",
            ["Polystore:Postgres:Connection:Sslmode"] = "VerifyFull",
            ["Polystore:Postgres:Pool:MaxSize"] = "42",
            ["Polystore:Postgres:Replication:ReadReplicas:0:Host"] = "r1",
            ["Polystore:Postgres:Replication:LoadBalance"] = "None",
            ["Polystore:Mongo:Replication:ReadPreference"] = "SecondaryPreferred",
        }).GetSection("Polystore"));

        Assert.Equal(Settings(snake), Settings(pascal));
        Assert.Equal(("api", PostgresSslMode.VerifyFull, 42, "r1"), (pascal.Postgres!.Connection.ApplicationName, pascal.Postgres.Connection.Sslmode, pascal.Postgres.Pool.MaxSize, pascal.Postgres.Replication.ReadReplicas[0].Host));
        Assert.Equal(MongoReadPreference.SecondaryPreferred, pascal.Mongo!.Replication.ReadPreference);
        Assert.Null(pascal.Redis);
    }

    [Fact]
    public void A_later_source_overrides_an_earlier_one_whichever_spelling_each_uses()
    {
        using var json = new JsonFile("""{ "Polystore": { "Postgres": { "pool": { "max_size": 10, "min_size": 2 } } } }""");
        using var environment = new EnvironmentVariables(new() { ["Polystore__Postgres__Pool__MaxSize"] = "80" });

        var envLast = new ConfigurationBuilder().SetBasePath(json.Directory).AddJsonFile("appsettings.json").AddEnvironmentVariables(EnvironmentVariables.LastPrefix).Build();
        var config = PolystoreConfig.Load(envLast.GetSection("Polystore"));
        Assert.Equal((80, 2), (config.Postgres!.Pool.MaxSize, config.Postgres.Pool.MinSize));
        Assert.Equal(EnvironmentVariables.LastPrefix + "Polystore__Postgres__Pool__MaxSize", config.SourceOf(StoreNames.Postgres, "pool.max_size").EnvironmentVariable);

        var jsonLast = new ConfigurationBuilder().AddEnvironmentVariables(EnvironmentVariables.LastPrefix).SetBasePath(json.Directory).AddJsonFile("appsettings.json").Build();
        Assert.Equal(10, PolystoreConfig.Load(jsonLast.GetSection("Polystore")).Postgres!.Pool.MaxSize);

        // A YAML folder is one more source: a later appsettings.json overrides it, key by key.
        using var folder = new ConfigFolder(("postgresql.yaml", "pool:\n  max_size: 30\n  max_overflow: 5\n"));
        var layered = new ConfigurationBuilder().AddPolystoreYaml(folder.Path, optional: false, NoEnvironment).SetBasePath(json.Directory).AddJsonFile("appsettings.json").Build();
        var pool = PolystoreConfig.Load(layered.GetSection("Polystore")).Postgres!.Pool;
        Assert.Equal((10, 2, 5), (pool.MaxSize, pool.MinSize, pool.MaxOverflow));
    }

    [Fact]
    public void One_key_written_two_ways_in_one_source_is_an_error()
    {
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(Memory(new()
        {
            ["Polystore:Postgres:Pool:MaxSize"] = "10",
            ["Polystore:Postgres:Pool:max_size"] = "20",
        }).GetSection("Polystore")));
        Assert.Contains("'MaxSize' and 'max_size' are one key written two ways; keep one", Assert.Single(e.Errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Yaml_through_the_configuration_keeps_file_line_and_column_and_its_variable_rules()
    {
        using var folder = new ConfigFolder(("postgresql.yaml", "connection:\n  host: db\n  port: ${PG_SECRET}\npool:\n  max_size: 0\n"));
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(
            Yaml(folder.Path, new Dictionary<string, string> { ["PG_SECRET"] = "hunter22-secret" }).GetSection("Polystore")));
        var port = Assert.Single(e.Errors);
        Assert.Equal(("postgresql.yaml", 3, 3, "connection.port"), (port.Source.File, port.Source.Line, port.Source.Column, port.KeyPath));
        Assert.Contains("a value from an environment variable (not shown)", port.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter22", e.Message, StringComparison.Ordinal);

        // With the types right, the range rules run and point at their lines as well.
        e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(
            Yaml(folder.Path, new Dictionary<string, string> { ["PG_SECRET"] = "5432" }).GetSection("Polystore")));
        Assert.Equal("postgresql.yaml:5:3: pool.max_size: 0 is too small; must be 1 or more", Assert.Single(e.Errors).ToString());

        // A file that does not read fails when the configuration is built, listing every problem with its line.
        var unset = Assert.Throws<ConfigException>(() => Yaml(folder.Path));
        var error = Assert.Single(unset.Errors);
        Assert.Equal(("postgresql.yaml", 3, "connection.port"), (error.Source.File, error.Source.Line, error.KeyPath));
        Assert.Contains("environment variable PG_SECRET is not set", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_relative_yaml_folder_resolves_against_the_base_path_not_the_current_folder()
    {
        using var contentRoot = new ConfigFolder();
        var config = Path.Combine(contentRoot.Path, "settings", "polystore");
        Directory.CreateDirectory(config);
        File.WriteAllText(Path.Combine(config, "redis.yaml"), "connection:\n  db: 3\n");
        Assert.NotEqual(contentRoot.Path, Directory.GetCurrentDirectory());

        var built = new ConfigurationBuilder().SetBasePath(contentRoot.Path).AddPolystoreYaml("settings/polystore").Build();
        Assert.Equal(3, PolystoreConfig.Load(built.GetSection("Polystore")).Redis!.Connection.Db);

        var missing = Assert.Throws<ConfigException>(() => new ConfigurationBuilder().SetBasePath(contentRoot.Path).AddPolystoreYaml("nowhere").Build());
        Assert.Contains($"'{Path.Combine(contentRoot.Path, "nowhere")}' does not exist", missing.Message, StringComparison.Ordinal);
        Assert.Contains("optional: true", missing.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("--dir", missing.Message, StringComparison.Ordinal);

        var optional = new ConfigurationBuilder().SetBasePath(contentRoot.Path).AddPolystoreYaml("nowhere", optional: true).Build();
        var none = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(optional.GetSection("Polystore")));
        Assert.Contains("no store is configured: configuration section 'Polystore'", none.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_folder_is_named_with_the_ways_to_configure_in_library_words()
    {
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load("/nonexistent/polystore", NoEnvironment));
        Assert.Contains("config folder '/nonexistent/polystore' does not exist", e.Message, StringComparison.Ordinal);
        Assert.Contains("POLYSTORE_POSTGRES_URL", e.Message, StringComparison.Ordinal);
        Assert.Contains("PolystoreConfig.Load(IConfiguration)", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("--dir", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Secrets_never_appear_in_errors_from_any_source()
    {
        const string Secret = "Sup3rS3cret";
        using var json = new JsonFile($$"""
            {
              "Polystore": {
                "Postgres": { "Connection": { "Password": { "Value": "{{Secret}}" } } },
                "Redis": { "Connection": { "Url": "redis//:{{Secret}}@cache:6379" }, "Cluster": { "Nodes": "redis://:{{Secret}}@node:7000" } },
                "Mongo": { "Connection": { "Uri": "mongodb:/u:{{Secret}}@m1" } }
              }
            }
            """);
        var fromJson = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(json.Configuration.GetSection("Polystore")));
        Assert.Contains(fromJson.Errors, x => x.KeyPath == "cluster.nodes" && x.Message.Contains("a secret value (not shown)", StringComparison.Ordinal));
        Assert.Contains(fromJson.Errors, x => x.KeyPath == "connection.uri");
        Assert.Contains(fromJson.Errors, x => x.KeyPath == "connection.password");

        using var environment = new EnvironmentVariables(new()
        {
            ["Polystore__Redis__Connection__Url"] = $"redis//:{Secret}@cache:6379",
            ["Polystore__Redis__Cluster__Nodes"] = $"redis://:{Secret}@node:7000",
        });
        var fromEnvironment = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(environment.Configuration.GetSection("Polystore")));

        using var folder = new ConfigFolder(("redis.yaml", $"connection:\n  url: \"redis//:{Secret}@cache:6379\"\ncluster:\n  nodes: \"redis://:{Secret}@node:7000\"\n"));
        var fromYamlSource = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(Yaml(folder.Path).GetSection("Polystore")));
        var fromFolder = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, NoEnvironment));

        foreach (var e in new[] { fromJson, fromEnvironment, fromYamlSource, fromFolder })
        {
            Assert.DoesNotContain(Secret, e.Message, StringComparison.Ordinal);
            Assert.All(e.Errors, x => Assert.DoesNotContain(Secret, x.ToString(), StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Unknown_keys_in_appsettings_json_are_reported_with_a_suggestion_in_their_own_spelling()
    {
        using var json = new JsonFile("""
            {
              "Polystore": {
                "Postgress": { "Connection": { "Host": "db" } },
                "Redis": { "Pool": { "MaxConections": 5, "socket_timout": 2 }, "Replication": { "X": 1 } },
                "HealthChecks": { "Timeout": "00:00:05" }
              }
            }
            """);
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(json.Configuration.GetSection("Polystore")));
        Assert.Equal(
        [
            ": unknown store section 'Postgress'; did you mean 'Postgres'?",
            "Replication: unknown key 'Replication'; expected one of: Connection, Pool, Cluster, Sentinel, Tls",
            "pool.MaxConections: unknown key 'MaxConections'; did you mean 'MaxConnections'?",
            "pool.socket_timout: unknown key 'socket_timout'; did you mean 'socket_timeout'?",
        ], e.Errors.Select(x => $"{x.KeyPath}: {x.Message}").Order(StringComparer.Ordinal));
        Assert.Equal("Polystore:Redis:Pool:MaxConections", Assert.Single(e.Errors, x => x.KeyPath == "pool.MaxConections").Source.ConfigurationKey);
        Assert.Equal("Polystore:Postgress (appsettings.json)", e.Errors.Single(x => x.KeyPath.Length == 0).Source.ToString());
    }

    [Fact]
    public void Empty_sections_and_lists_keep_their_defaults()
    {
        using var json = new JsonFile("""{ "Polystore": { "Postgres": {}, "Redis": { "Cluster": { "Nodes": [] }, "Sentinel": { "Sentinels": [] } } } }""");
        var config = PolystoreConfig.Load(json.Configuration.GetSection("Polystore"));
        Assert.Equal(new PostgresSettings().Pool.MaxSize, config.Postgres!.Pool.MaxSize);
        Assert.Empty(config.Redis!.Cluster.Nodes);
        Assert.Null(config.Mongo);
    }

    [Fact]
    public void A_configuration_whose_providers_cannot_be_reached_names_the_key_path_only()
    {
        var inner = Memory(new() { ["Polystore:Postgres:Pool:MaxSize"] = "0" }).GetSection("Polystore");
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(new OpaqueSection(inner)));
        var error = Assert.Single(e.Errors);
        Assert.Equal(("Polystore:Postgres:Pool:MaxSize", null), (error.Source.ConfigurationKey, error.Source.Provider));
        Assert.Equal("Polystore:Postgres:Pool:MaxSize: pool.max_size: 0 is too small; must be 1 or more", error.ToString());

        // The same configuration, walkable, names its provider.
        var named = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(inner));
        Assert.Equal("in-memory configuration", Assert.Single(named.Errors).Source.Provider);
    }

    private static IConfigurationRoot Yaml(string directory, Dictionary<string, string>? environment = null) =>
        new ConfigurationBuilder().AddPolystoreYaml(directory, optional: false, environment ?? NoEnvironment).Build();

    private static IConfigurationRoot Memory(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    private static string Settings(PolystoreConfig config) =>
        JsonSerializer.Serialize(new object?[] { config.Postgres, config.Redis, config.Mongo });

    /// <summary>A real appsettings.json in a folder of its own, loaded with AddJsonFile.</summary>
    private sealed class JsonFile : IDisposable
    {
        private readonly ConfigFolder _folder = new();

        public JsonFile(string json)
        {
            File.WriteAllText(Path.Combine(_folder.Path, "appsettings.json"), json);
            Configuration = new ConfigurationBuilder().SetBasePath(_folder.Path).AddJsonFile("appsettings.json").Build();
        }

        public string Directory => _folder.Path;
        public IConfigurationRoot Configuration { get; }
        public void Dispose() => _folder.Dispose();
    }

    /// <summary>Process environment variables under a prefix no other test uses, read by the EnvironmentVariables provider.</summary>
    [Fact]
    public void A_value_set_by_an_environment_variable_is_never_quoted_in_an_error()
    {
        // A password pasted into the wrong variable: the error names the key and the variable, never the value.
        using var environment = new EnvironmentVariables(new() { ["Polystore__Postgres__Pool__MaxSize"] = "hunter2-not-a-number" });

        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(environment.Configuration.GetSection("Polystore")));

        Assert.Contains("Polystore__Postgres__Pool__MaxSize", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", e.Message, StringComparison.Ordinal);
    }

    private sealed class EnvironmentVariables : IDisposable
    {
        private readonly List<string> _names = [];

        public EnvironmentVariables(Dictionary<string, string> variables)
        {
            var prefix = $"PSCFG_{Guid.NewGuid():N}_";
            LastPrefix = prefix;
            foreach (var (name, value) in variables)
            {
                _names.Add(prefix + name);
                Environment.SetEnvironmentVariable(prefix + name, value);
            }
            Configuration = new ConfigurationBuilder().AddEnvironmentVariables(prefix).Build();
        }

        // Tests in one class run one at a time, so the last prefix made is the current test's.
        public static string LastPrefix { get; private set; } = "";

        public IConfigurationRoot Configuration { get; }

        public void Dispose()
        {
            foreach (var name in _names) Environment.SetEnvironmentVariable(name, null);
        }
    }

    /// <summary>A configuration that is neither a root nor a ConfigurationSection: its providers are out of reach.</summary>
    private sealed class OpaqueSection(IConfigurationSection inner) : IConfigurationSection
    {
        public string? this[string key] { get => inner[key]; set => inner[key] = value; }
        public string Key => inner.Key;
        public string Path => inner.Path;
        public string? Value { get => inner.Value; set => inner.Value = value; }
        public IEnumerable<IConfigurationSection> GetChildren() => inner.GetChildren().Select(c => new OpaqueSection(c));
        public IChangeToken GetReloadToken() => inner.GetReloadToken();
        public IConfigurationSection GetSection(string key) => new OpaqueSection(inner.GetSection(key));
    }
}
