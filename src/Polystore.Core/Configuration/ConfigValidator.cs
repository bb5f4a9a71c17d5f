namespace Polystore.Core.Configuration;

/// <summary>Checks ranges and cross-key rules once the types are right; every problem names its key.</summary>
/// <param name="sources">Each store's bound values' sources, by key path.</param>
/// <param name="storeSource">Where a store's rule points when no key of the rule was set; its config file when null.</param>
internal sealed class ConfigValidator(Dictionary<string, IReadOnlyDictionary<string, ConfigSource>> sources, Func<string, ConfigSource>? storeSource = null)
{
    public List<ConfigError> Errors { get; } = [];

    public void Validate(PostgresSettings s)
    {
        const string store = StoreNames.Postgres;
        Require(store, "connection.host", !string.IsNullOrWhiteSpace(s.Connection.Host), "must not be empty");
        for (var i = 0; i < s.Connection.Hosts.Count; i++)
        {
            var error = PostgresHostEntry.Check(s.Connection.Hosts[i]);
            Require(store, $"connection.hosts[{i}]", error is null, error ?? "");
        }
        Require(store, "connection.target_session_attributes", s.Connection.TargetSessionAttributes is null || s.Connection.Hosts.Count > 0,
            "applies to connection.hosts only; list the servers there (or remove target_session_attributes)");
        Port(store, "connection.port", s.Connection.Port);
        Require(store, "connection.database", !string.IsNullOrWhiteSpace(s.Connection.Database), "must not be empty");
        Require(store, "connection.user", !string.IsNullOrWhiteSpace(s.Connection.User), "must not be empty");
        // Npgsql refuses a NUL in a connection string value only when it connects.
        NoNul(store, "connection.host", s.Connection.Host);
        NoNul(store, "connection.database", s.Connection.Database);
        NoNul(store, "connection.user", s.Connection.User);
        NoNul(store, "connection.application_name", s.Connection.ApplicationName);
        AtLeast(store, "connection.command_timeout", s.Connection.CommandTimeout, 0);
        // Npgsql counts the command timeout in milliseconds in an int.
        AtMost(store, "connection.command_timeout", s.Connection.CommandTimeout, MaxSecondsInMilliseconds, "Npgsql's largest command timeout");
        AtLeast(store, "pool.min_size", s.Pool.MinSize, 0);
        AtLeast(store, "pool.max_size", s.Pool.MaxSize, 1);
        AtLeast(store, "pool.max_overflow", s.Pool.MaxOverflow, 0);
        AtLeast(store, "pool.pool_recycle", s.Pool.PoolRecycle, 0);
        AtLeast(store, "pool.pool_timeout", s.Pool.PoolTimeout, 1);
        AtMost(store, "pool.pool_timeout", s.Pool.PoolTimeout, 1024, "Npgsql's largest connection timeout");
        AtMost(store, "pool.max_size", s.Pool.MaxSize, MaxPoolConnections, "a pool that large");
        AtMost(store, "pool.max_overflow", s.Pool.MaxOverflow, MaxPoolConnections, "a pool that large");
        Require(store, "pool.max_overflow", (long)s.Pool.MaxSize + s.Pool.MaxOverflow <= MaxPoolConnections,
            $"max_size + max_overflow ({(long)s.Pool.MaxSize + s.Pool.MaxOverflow:N0}) is above {MaxPoolConnections:N0}, more connections than a server accepts");
        Require(store, "pool.min_size", s.Pool.MinSize <= s.Pool.MaxSize, $"min_size ({s.Pool.MinSize}) is larger than max_size ({s.Pool.MaxSize})");
        AtLeast(store, "performance.statement_cache_size", s.Performance.StatementCacheSize, 0);
        AtLeast(store, "performance.prepared_statement_cache_size", s.Performance.PreparedStatementCacheSize, 0);
        if (s.Connection.Direct is { } direct)
        {
            Require(store, "connection.direct.host", !string.IsNullOrWhiteSpace(direct.Host), "must not be empty (the PostgreSQL server behind the pooler)");
            Port(store, "connection.direct.port", direct.Port);
            Require(store, "connection.direct.host", !direct.Host.Contains(',', StringComparison.Ordinal), "must be one host");
        }
        if (s.Connection.Pooler == PostgresPooler.PgBouncerTransaction)
        {
            // Npgsql would prepare statements on one server connection and run them on another.
            Require(store, "performance.statement_cache_size", s.Performance.StatementCacheSize == 0,
                $"must be 0 when connection.pooler is pgbouncer-transaction (got {s.Performance.StatementCacheSize}): in transaction pooling a statement prepared on one server connection is not there on the next");
        }
        for (var i = 0; i < s.Replication.ReadReplicas.Count; i++)
        {
            var replica = s.Replication.ReadReplicas[i];
            Require(store, $"replication.read_replicas[{i}].host", !string.IsNullOrWhiteSpace(replica.Host), "must not be empty");
            Port(store, $"replication.read_replicas[{i}].port", replica.Port);
        }
        ValidateTls(store, s.Connection);
    }

    private void ValidateTls(string store, PostgresConnectionSettings c)
    {
        if (c.SslRootCert is null && c.SslCert is null && c.SslKey is null) return;
        // Stricter than libpq, which lets sslmode=require check a root certificate when one is there: a CA named in the
        // config is meant to be checked, so say which mode checks it.
        Require(store, "connection.sslrootcert", c.SslRootCert is null || c.Sslmode is PostgresSslMode.VerifyCa or PostgresSslMode.VerifyFull,
            $"is only checked with sslmode verify-ca or verify-full, but sslmode is {ConfigBinder.EnumName(c.Sslmode)}; set sslmode: verify-full (the CA and the host name) or verify-ca (the CA only)");
        if (c.SslCert is not null || c.SslKey is not null)
            Require(store, c.SslCert is not null ? "connection.sslcert" : "connection.sslkey", c.Sslmode != PostgresSslMode.Disable,
                "is sent over TLS only, but sslmode is disable; set sslmode: verify-full (or require)");
        CheckTlsFiles(store, TlsKeyNames.Postgres, c.SslRootCert, c.SslCert, c.SslKey);
    }

    public void Validate(MongoSettings s)
    {
        const string store = StoreNames.Mongo;
        var uriOk = s.Connection.Uri.StartsWith("mongodb://", StringComparison.Ordinal) || s.Connection.Uri.StartsWith("mongodb+srv://", StringComparison.Ordinal);
        Require(store, "connection.uri", uriOk, $"must start with mongodb:// or mongodb+srv://; got {Redactor.MaskSecretUrl(s.Connection.Uri)}");
        if (uriOk && MongoHostsProblem(s.Connection.Uri) is { } hosts) Require(store, "connection.uri", false, hosts);
        Require(store, "connection.database", !string.IsNullOrWhiteSpace(s.Connection.Database) && s.Connection.Database.IndexOfAny(['/', '\\', '.', ' ', '"', '$']) < 0,
            "must be a database name without / \\ . space \" or $");
        AtLeast(store, "pool.max_pool_size", s.Pool.MaxPoolSize, 1);
        AtLeast(store, "pool.min_pool_size", s.Pool.MinPoolSize, 0);
        Require(store, "pool.min_pool_size", s.Pool.MinPoolSize <= s.Pool.MaxPoolSize, $"min_pool_size ({s.Pool.MinPoolSize}) is larger than max_pool_size ({s.Pool.MaxPoolSize})");
        AtLeast(store, "pool.max_idle_time_ms", s.Pool.MaxIdleTimeMs, 0);
        AtLeast(store, "pool.wait_queue_timeout_ms", s.Pool.WaitQueueTimeoutMs, 0);
        var w = s.Replication.WriteConcern.W;
        Require(store, "replication.write_concern.w", w is null || w == "majority" || int.TryParse(w, out var n) && n >= 0,
            "must be majority or a number of members (0, 1, 2, ...)"); // the value is not quoted: it may come from a variable
        if (s.Replication.WriteConcern.Wtimeout is { } wtimeout) AtLeast(store, "replication.write_concern.wtimeout", wtimeout, 0);
        Require(store, "replication.write_concern.j", !(w == "0" && s.Replication.WriteConcern.J == true), "j: true contradicts w: 0 (unacknowledged writes cannot wait for the journal)");
        if (s.Sharding.Enabled)
            Require(store, "sharding.shard_key", !string.IsNullOrWhiteSpace(s.Sharding.ShardKey), "is required when sharding.enabled is true");
        AtLeast(store, "sharding.chunk_size_mb", s.Sharding.ChunkSizeMb, 1);
        Require(store, "sharding.chunk_size_mb", s.Sharding.ChunkSizeMb <= 1024, $"{s.Sharding.ChunkSizeMb} is above MongoDB's limit of 1024");
    }

    public void Validate(RedisSettings s)
    {
        const string store = StoreNames.Redis;
        var urlOk = Uri.TryCreate(s.Connection.Url, UriKind.Absolute, out var url) && url.Scheme is "redis" or "rediss" && url.Port != 0;
        Require(store, "connection.url", urlOk, $"must look like redis://host:port or rediss://host:port; got {Redactor.MaskSecretUrl(s.Connection.Url)}");
        if (urlOk && url!.AbsolutePath.Trim('/') is { Length: > 0 } database)
            Require(store, "connection.url", int.TryParse(database, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _),
                "the URL's path is the database number (redis://host:6379/2); this one is not a number");
        Require(store, "pool.connection_timeout", s.Pool.ConnectionTimeout <= MaxSecondsInMilliseconds, $"must be at most {MaxSecondsInMilliseconds:N0} seconds (StackExchange.Redis counts it in milliseconds in an int)");
        Require(store, "pool.socket_timeout", s.Pool.SocketTimeout <= MaxSecondsInMilliseconds, $"must be at most {MaxSecondsInMilliseconds:N0} seconds (StackExchange.Redis counts it in milliseconds in an int)");
        AtLeast(store, "connection.db", s.Connection.Db, 0);
        AtLeast(store, "pool.max_connections", s.Pool.MaxConnections, 1);
        AtLeast(store, "pool.min_idle", s.Pool.MinIdle, 0);
        AtLeast(store, "pool.max_idle", s.Pool.MaxIdle, 0);
        Require(store, "pool.min_idle", s.Pool.MaxIdle == 0 || s.Pool.MinIdle <= s.Pool.MaxIdle,
            $"min_idle ({s.Pool.MinIdle}) is larger than max_idle ({s.Pool.MaxIdle})");
        Require(store, "pool.max_idle", s.Pool.MaxIdle <= s.Pool.MaxConnections, $"max_idle ({s.Pool.MaxIdle}) is larger than max_connections ({s.Pool.MaxConnections})");
        Require(store, "pool.connection_timeout", s.Pool.ConnectionTimeout > 0, "must be more than 0 seconds");
        Require(store, "pool.socket_timeout", s.Pool.SocketTimeout > 0, "must be more than 0 seconds");
        Require(store, "cluster.enabled", !(s.Cluster.Enabled && s.Sentinel.Enabled), "cluster and sentinel cannot both be enabled");
        if (s.Cluster.Enabled)
        {
            Require(store, "cluster.nodes", s.Cluster.Nodes.Count > 0, "lists no node; give at least one redis://host:port");
            Require(store, "connection.db", s.Connection.Db == 0, "Redis Cluster has only database 0");
        }
        for (var i = 0; i < s.Cluster.Nodes.Count; i++)
        {
            var ok = Uri.TryCreate(s.Cluster.Nodes[i], UriKind.Absolute, out var node) && node.Scheme is "redis" or "rediss" && node.Port > 0;
            Require(store, $"cluster.nodes[{i}]", ok, $"must look like redis://host:port; got {Redactor.MaskSecretUrl(s.Cluster.Nodes[i])}");
        }
        if (s.Sentinel.Enabled)
        {
            Require(store, "sentinel.master_name", !string.IsNullOrWhiteSpace(s.Sentinel.MasterName), "is required when sentinel.enabled is true");
            Require(store, "sentinel.sentinels", s.Sentinel.Sentinels.Count > 0, "lists no sentinel; give at least one host and port");
            // StackExchange.Redis authenticates to the sentinels and to the servers with one password.
            var serverPassword = s.Connection.Password ?? UrlPassword(s.Connection.Url);
            Require(store, "sentinel.password", s.Sentinel.Password is null || serverPassword is null || s.Sentinel.Password == serverPassword,
                "differs from the servers' password (connection.password), but the Redis client sends one password to the sentinels and the servers: give the sentinels the servers' password, or leave sentinel.password unset");
        }
        for (var i = 0; i < s.Sentinel.Sentinels.Count; i++)
        {
            Require(store, $"sentinel.sentinels[{i}].host", !string.IsNullOrWhiteSpace(s.Sentinel.Sentinels[i].Host), "must not be empty");
            Port(store, $"sentinel.sentinels[{i}].port", s.Sentinel.Sentinels[i].Port);
        }
        ValidateTls(store, s);
    }

    // The files are read here, once, so that a missing, unreadable or wrong PEM file is named with its key before any
    // connection is tried. Messages name the path and what is wrong, never the contents.
    private void ValidateTls(string store, RedisSettings s)
    {
        var tls = s.Tls;
        if (tls.CaCertificate is null && tls.ClientCertificate is null && tls.ClientKey is null) return;
        // As RedisDriverSettings decides: rediss:// in connection.url, or (cluster) in a node's URL.
        var tlsOn = s.Connection.Url.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase)
            || (s.Cluster.Enabled && s.Cluster.Nodes.Any(n => n.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase)));
        var set = tls.CaCertificate is not null ? "tls.ca_certificate" : tls.ClientCertificate is not null ? "tls.client_certificate" : "tls.client_key";
        Require(store, set, tlsOn, s.Cluster.Enabled
            ? "applies to TLS connections only, but no cluster node (nor connection.url) is rediss://; use rediss:// URLs for a cluster on TLS"
            : "applies to TLS connections only, but connection.url is redis://; use rediss://host:port for a server on TLS");
        CheckTlsFiles(store, TlsKeyNames.Redis, tls.CaCertificate, tls.ClientCertificate, tls.ClientKey);
    }

    private void CheckTlsFiles(string store, TlsKeyNames keys, string? caCertificate, string? clientCertificate, string? clientKey)
    {
        var problems = new List<(string Key, string Message)>();
        var (authorities, client) = TlsFiles.Load(keys, caCertificate, clientCertificate, clientKey, problems);
        foreach (var (key, message) in problems) Require(store, key, false, message);
        if (authorities is not null) foreach (var certificate in authorities) certificate.Dispose();
        client?.Dispose();
    }

    private static string? UrlPassword(string? url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri)) return null;
        var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0) return null;
        var password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
        return password.Length == 0 ? null : password;
    }

    /// <summary>Seconds that still fit in an int once counted in milliseconds.</summary>
    private const int MaxSecondsInMilliseconds = int.MaxValue / 1000;

    /// <summary>The most connections one pool may open: above any server's max_connections, below what a pool can allocate.</summary>
    private const int MaxPoolConnections = 10_000;

    private void AtMost(string store, string key, int value, int maximum, string what) =>
        Require(store, key, value <= maximum, $"{value:N0} is too large; must be at most {maximum:N0} ({what})");

    private void NoNul(string store, string key, string? value) => Require(store, key, value is null || !value.Contains('\0', StringComparison.Ordinal), "contains a NUL character");

    /// <summary>
    /// What is wrong with the host list of a mongodb:// or mongodb+srv:// URI (the driver refuses these only when it
    /// connects), or null. The URI's text is never quoted: it may hold a password.
    /// </summary>
    internal static string? MongoHostsProblem(string uri)
    {
        var srv = uri.StartsWith("mongodb+srv://", StringComparison.Ordinal);
        var start = uri.IndexOf("://", StringComparison.Ordinal) + 3;
        var end = uri.IndexOfAny(['/', '?'], start);
        var authority = end < 0 ? uri[start..] : uri[start..end];
        var hosts = authority[(authority.LastIndexOf('@') + 1)..];
        if (hosts.Length == 0) return "names no host; give host:port after the credentials (mongodb://user:password@host:27017)";
        var list = hosts.Split(',');
        if (srv && list.Length > 1) return "a mongodb+srv:// URI names one host (its DNS SRV record lists the servers)";
        foreach (var host in list)
        {
            var close = host.StartsWith('[') ? host.IndexOf(']', StringComparison.Ordinal) : -1;
            var colon = host.IndexOf(':', Math.Max(close, 0));
            var name = colon < 0 ? host : host[..colon];
            if (name.Length == 0 || (host.StartsWith('[') && close < 0)) return "has an empty or malformed host in its host list";
            if (colon < 0) continue;
            if (srv) return "a mongodb+srv:// host cannot have a port (the SRV record gives the ports)";
            var port = host[(colon + 1)..];
            if (!int.TryParse(port, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var number) || number is < 1 or > 65535)
                return "has a host whose port is not a TCP port (1-65535)";
        }
        return null;
    }

    private void Port(string store, string key, int port) => Require(store, key, port is > 0 and <= 65535, $"{port} is not a TCP port (1-65535)");

    private void AtLeast(string store, string key, int value, int minimum) =>
        Require(store, key, value >= minimum, minimum == 0 ? $"{value} is negative; must be 0 or more" : $"{value} is too small; must be {minimum} or more");

    private void Require(string store, string key, bool condition, string message)
    {
        if (condition) return;
        var source = sources.TryGetValue(store, out var map) && FindSource(map, key) is { } found ? found
            : storeSource?.Invoke(store) ?? new ConfigSource(StoreNames.ConfigFile(store), 0, 0);
        Errors.Add(new ConfigError(source, key, message));
    }

    // A default that breaks a rule has no position of its own; point at the nearest enclosing key.
    private static ConfigSource? FindSource(IReadOnlyDictionary<string, ConfigSource> map, string key)
    {
        for (var path = key; path.Length > 0; path = path.Contains('.', StringComparison.Ordinal) ? path[..path.LastIndexOf('.')] : "")
            if (map.TryGetValue(path, out var source)) return source;
        return null;
    }
}
