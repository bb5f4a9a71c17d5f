using Polystore.Core.Configuration;

namespace Polystore.Testing;

/// <summary>
/// The private servers that <c>./run up</c> (and so <c>./run test</c>) started: their config folder
/// and the facts in <c>.polystore/servers.env</c> (ports, passwords) that tests need to provoke faults.
/// </summary>
public static class TestServers
{
    private static readonly Lazy<string> StateDirectory = new(FindStateDirectory);
    private static readonly Lazy<IReadOnlyDictionary<string, string>> Environment = new(ReadServersEnv);

    /// <summary>The config folder for the private servers.</summary>
    public static string ConfigDirectory =>
        System.Environment.GetEnvironmentVariable("POLYSTORE_CONFIG_DIR") is { Length: > 0 } dir ? dir : Path.Combine(StateDirectory.Value, "config");

    /// <summary>The loaded config of the private servers.</summary>
    public static PolystoreConfig Config => PolystoreConfig.Load(ConfigDirectory);

    /// <summary>postgresql.yaml of the private server.</summary>
    public static PostgresSettings Postgres => Config.Postgres ?? throw new InvalidOperationException("the private config has no postgresql.yaml; run ./run up");

    /// <summary>redis.yaml of the private standalone server.</summary>
    public static RedisSettings Redis => Config.Redis ?? throw new InvalidOperationException("the private config has no redis.yaml; run ./run up");

    /// <summary>redis.yaml of the private 3-master cluster, or null when <c>./run up --redis-cluster</c> was not used.</summary>
    public static RedisSettings? RedisCluster
    {
        get
        {
            var dir = Path.Combine(StateDirectory.Value, "config-cluster");
            return Directory.Exists(dir) ? PolystoreConfig.Load(dir).Redis : null;
        }
    }

    /// <summary>
    /// postgresql.yaml for the private PgBouncer (transaction pooling, with <c>connection.direct</c> to the primary),
    /// or null when <c>./run up --pgbouncer</c> was not used.
    /// </summary>
    public static PostgresSettings? PgBouncer
    {
        get
        {
            var dir = Path.Combine(StateDirectory.Value, "config-pgbouncer");
            return Directory.Exists(dir) ? PolystoreConfig.Load(dir).Postgres : null;
        }
    }

    /// <summary>Whether the tests run through PgBouncer (the config folder in use says <c>pooler: pgbouncer-transaction</c>).</summary>
    public static bool ThroughPgBouncer => Config.Postgres?.Connection.Pooler == PostgresPooler.PgBouncerTransaction;

    /// <summary>redis.yaml of the private Sentinel setup (a primary, a replica, three sentinels), or null when <c>./run up --redis-sentinel</c> was not used.</summary>
    public static RedisSettings? RedisSentinel
    {
        get
        {
            var dir = Path.Combine(StateDirectory.Value, "config-sentinel");
            return Directory.Exists(dir) ? PolystoreConfig.Load(dir).Redis : null;
        }
    }

    /// <summary>mongodb.yaml when a MongoDB server is configured, else null.</summary>
    public static MongoSettings? Mongo => Config.Mongo;

    /// <summary>A value from <c>.polystore/servers.env</c> (PG_PORT, PG_REPLICA_PORT, REDIS_PORT, PGBIN, TMPROOT, ...).</summary>
    public static string? Get(string name) => Environment.Value.TryGetValue(name, out var value) ? value : null;

    /// <summary>The <c>.polystore</c> folder of the checkout the tests run from.</summary>
    public static string State => StateDirectory.Value;

    private static string FindStateDirectory()
    {
        if (System.Environment.GetEnvironmentVariable("POLYSTORE_STATE_DIR") is { Length: > 0 } fromEnv) return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var state = Path.Combine(dir.FullName, ConfigLocator.StateFolder);
            if (File.Exists(Path.Combine(state, "running"))) return state;
        }
        throw new InvalidOperationException("no private servers found: run './run up --replica --redis-cluster' (or './run test') first");
    }

    private static IReadOnlyDictionary<string, string> ReadServersEnv()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var path = Path.Combine(StateDirectory.Value, "servers.env");
        if (!File.Exists(path)) return result;
        foreach (var line in File.ReadAllLines(path))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0) result[line[..eq]] = line[(eq + 1)..].Trim('"');
        }
        return result;
    }

    /// <summary>A short unique name for a schema or key prefix, so test classes never share state.</summary>
    public static string UniqueName(string prefix) => $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 60)].ToLowerInvariant();
}
