using Npgsql;
using Polystore.Core.Configuration;

namespace Polystore.Postgres;

/// <summary>
/// The one place where postgresql.yaml becomes Npgsql settings. See the README's configuration
/// reference for why each key maps the way it does.
/// </summary>
public static class PostgresDriverSettings
{
    /// <summary>How long a connection above <c>min_size</c> may sit idle before the pool closes it (Npgsql's pruning).</summary>
    public const int OverflowIdleSeconds = 60;

    /// <summary>Seconds between keepalive round trips on idle connections when <c>pool_pre_ping</c> is on.</summary>
    public const int PrePingKeepAliveSeconds = 30;

    /// <summary>
    /// Seconds Npgsql trusts what it learnt about a server of <c>connection.hosts</c> (primary, standby, down) before
    /// asking again. Npgsql's default of 10 s would keep a just-promoted standby "a standby" that long after a failover.
    /// </summary>
    public const int HostsRecheckSeconds = 1;

    /// <summary>The largest <c>connection.command_timeout</c> Npgsql accepts, in seconds (about 24.8 days).</summary>
    public const int MaxCommandTimeout = int.MaxValue / 1000;

    /// <summary>
    /// The connection string for the primary (or every server of <c>connection.hosts</c>) and every replica (Npgsql's
    /// multi-host syntax). Which server a connection picks is not part of it: Npgsql takes that from the data source
    /// (<see cref="TargetSession"/>, applied by <see cref="PostgresDataSources.Create"/>).
    /// </summary>
    /// <exception cref="ArgumentException">
    /// A host contains a comma (Npgsql would read it as several hosts), an entry of <c>connection.hosts</c> is not
    /// <c>host:port</c>, or <c>connection.command_timeout</c> is outside 0 to <see cref="MaxCommandTimeout"/> seconds (Npgsql's limit).
    /// </exception>
    public static NpgsqlConnectionStringBuilder Build(PostgresSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var c = settings.Connection;
        if (c.CommandTimeout is < 0 or > MaxCommandTimeout)
            throw new ArgumentOutOfRangeException(nameof(settings), c.CommandTimeout, $"connection.command_timeout must be between 0 (no limit) and {MaxCommandTimeout} seconds; got {c.CommandTimeout}.");
        var transactionPooler = c.Pooler == PostgresPooler.PgBouncerTransaction;
        var hosts = c.Hosts.Count == 0
            ? [HostPort("connection.host", c.Host, c.Port)]
            : c.Hosts.Select((entry, i) => PostgresHostEntry.Parse(entry, c.Port)).Select((h, i) => HostPort($"connection.hosts[{i}]", h.Host, h.Port)).ToList();
        hosts.AddRange(settings.Replication.ReadReplicas.Select((r, i) => HostPort($"replication.read_replicas[{i}].host", r.Host, r.Port)));
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = string.Join(',', hosts),
            Database = c.Database,
            Username = c.User,
            Password = c.Password,
            SslMode = c.Sslmode switch
            {
                PostgresSslMode.Disable => SslMode.Disable,
                PostgresSslMode.Allow => SslMode.Allow,
                PostgresSslMode.Prefer => SslMode.Prefer,
                PostgresSslMode.Require => SslMode.Require,
                PostgresSslMode.VerifyCa => SslMode.VerifyCA,
                _ => SslMode.VerifyFull,
            },
            // Files the config check has read (PEM; the key unencrypted). Npgsql checks the server's chain against
            // RootCertificate alone, and the host name too under VerifyFull.
            RootCertificate = c.SslRootCert,
            SslCertificate = c.SslCert,
            SslKey = c.SslKey,
            ApplicationName = c.ApplicationName,
            CommandTimeout = c.CommandTimeout,
            // Npgsql has no overflow: the hard ceiling is max_size + max_overflow, and connections
            // above min_size are pruned once idle, which is what SQLAlchemy's overflow does.
            MinPoolSize = settings.Pool.MinSize,
            MaxPoolSize = settings.Pool.MaxSize + settings.Pool.MaxOverflow,
            ConnectionIdleLifetime = OverflowIdleSeconds,
            ConnectionLifetime = settings.Pool.PoolRecycle,
            // Npgsql waits up to Timeout both to connect and for a free pooled connection.
            Timeout = settings.Pool.PoolTimeout,
            // asyncpg's statement_cache_size = 0 means "never prepare" (PgBouncer transaction mode). Settings built in
            // code skip the config check that demands it behind such a pooler: never prepare there either.
            MaxAutoPrepare = settings.Performance.StatementCacheSize == 0 || transactionPooler
                ? 0
                : Math.Min(settings.Performance.StatementCacheSize, settings.Performance.PreparedStatementCacheSize),
            AutoPrepareMinUsages = 2,
            // PgBouncer 1.18 refuses the `options` startup parameter (it cannot tell which server connection it
            // applies to): behind it, jit is the server's business (ALTER ROLE ... SET jit = off, or PgBouncer's
            // connect_query).
            Options = settings.Performance.Jit || transactionPooler ? null : "-c jit=off",
            // Npgsql resets a pooled connection (DISCARD ALL) when it is next used; through transaction pooling that
            // lands on whichever server connection is free and wipes what the pooler set there (connect_query).
            NoResetOnClose = transactionPooler,
            LoadBalanceHosts = settings.Replication.LoadBalance == PostgresLoadBalance.RoundRobin && HasStandbys(settings),
            KeepAlive = settings.Pool.PoolPrePing ? PrePingKeepAliveSeconds : 0,
        };
        if (c.Hosts.Count > 0) builder.HostRecheckSeconds = HostsRecheckSeconds;
        return builder;
    }

    /// <summary>
    /// The connection string for <c>connection.direct</c> (the server behind the pooler, for what needs a session:
    /// LISTEN, session advisory locks), or null when it is not set.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Build"/>.</exception>
    public static NpgsqlConnectionStringBuilder? BuildDirect(PostgresSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Connection.Direct is not { } direct) return null;
        var builder = Build(settings);
        builder.Host = HostPort("connection.direct.host", direct.Host, direct.Port);
        if (direct.Database is { Length: > 0 } database) builder.Database = database;
        if (direct.User is { Length: > 0 } user) builder.Username = user;
        if (direct.Password is not null) builder.Password = direct.Password;
        // A session of its own: the server takes options, and a connection is reset before it is reused.
        builder.Options = settings.Performance.Jit ? null : "-c jit=off";
        builder.NoResetOnClose = false;
        builder.LoadBalanceHosts = false;
        // Sessions are few and long (one per dispatcher leading or waiting); none kept idle.
        builder.MinPoolSize = 0;
        return builder;
    }

    /// <summary>
    /// Whether connections must pick among several servers: <c>connection.hosts</c> lists more than one, or
    /// <c>connection.target_session_attributes</c> is set.
    /// </summary>
    public static bool IsMultiHost(PostgresSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Connection.Hosts.Count > 1 || settings.Connection.TargetSessionAttributes is not null;
    }

    /// <summary>
    /// Whether reads have standbys to go to: <c>replication.read_replicas</c> lists some, or <c>connection.hosts</c> lists
    /// a group (more than one server: whichever are standbys at the time serve reads).
    /// </summary>
    internal static bool HasStandbys(PostgresSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Replication.ReadReplicas.Count > 0 || settings.Connection.Hosts.Count > 1;
    }

    /// <summary>
    /// The server type the application's connections ask for among <c>connection.hosts</c>
    /// (<c>connection.target_session_attributes</c>, primary when not set), as Npgsql spells it.
    /// </summary>
    public static TargetSessionAttributes TargetSession(PostgresSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Connection.TargetSessionAttributes switch
        {
            PostgresTargetSession.Any => TargetSessionAttributes.Any,
            PostgresTargetSession.Standby => TargetSessionAttributes.Standby,
            PostgresTargetSession.PreferPrimary => TargetSessionAttributes.PreferPrimary,
            PostgresTargetSession.PreferStandby => TargetSessionAttributes.PreferStandby,
            PostgresTargetSession.ReadWrite => TargetSessionAttributes.ReadWrite,
            PostgresTargetSession.ReadOnly => TargetSessionAttributes.ReadOnly,
            _ => TargetSessionAttributes.Primary,
        };
    }

    private static string HostPort(string key, string host, int port)
    {
        // The hosts are joined with commas into one Host value, so a comma inside one would add a host nobody configured.
        if (host.Contains(',', StringComparison.Ordinal))
            throw new ArgumentException($"{key} '{host}' contains a comma; give one host per entry (further servers go in replication.read_replicas).", nameof(PostgresSettings));
        return host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[') ? $"[{host}]:{port}" : $"{host}:{port}";
    }
}
