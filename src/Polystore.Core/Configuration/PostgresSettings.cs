namespace Polystore.Core.Configuration;

/// <summary>The contents of <c>postgresql.yaml</c>.</summary>
public sealed class PostgresSettings
{
    /// <summary>Where the primary server is and how to log in.</summary>
    public PostgresConnectionSettings Connection { get; init; } = new();
    /// <summary>Connection pool sizing and hygiene.</summary>
    public PostgresPoolSettings Pool { get; init; } = new();
    /// <summary>Statement caching and server settings applied to every session.</summary>
    public PostgresPerformanceSettings Performance { get; init; } = new();
    /// <summary>Read replicas and how reads are spread over them.</summary>
    public PostgresReplicationSettings Replication { get; init; } = new();
}

/// <summary><c>connection:</c> in postgresql.yaml.</summary>
public sealed class PostgresConnectionSettings
{
    /// <summary>Primary host name or address.</summary>
    public string Host { get; init; } = "localhost";
    /// <summary>Primary port.</summary>
    public int Port { get; init; } = 5432;
    /// <summary>Database name.</summary>
    public string Database { get; init; } = "postgres";
    /// <summary>Login role.</summary>
    public string User { get; init; } = "postgres";
    /// <summary>Password; never printed.</summary>
    [Secret] public string? Password { get; init; }
    /// <summary>TLS mode, as libpq spells it.</summary>
    public PostgresSslMode Sslmode { get; init; } = PostgresSslMode.Prefer;
    /// <summary>
    /// libpq's <c>sslrootcert</c>: a PEM file of the CA(s) the server's certificate must chain up to, for
    /// <c>sslmode: verify-ca</c> or <c>verify-full</c> (a private CA, or a cloud provider's bundle).
    /// </summary>
    [ConfigName("sslrootcert")] public string? SslRootCert { get; init; }
    /// <summary>libpq's <c>sslcert</c>: a PEM client certificate, for a server that asks for one (<c>clientcert=verify-ca|verify-full</c> or <c>cert</c> authentication in pg_hba.conf).</summary>
    [ConfigName("sslcert")] public string? SslCert { get; init; }
    /// <summary>libpq's <c>sslkey</c>: the unencrypted PEM private key of <see cref="SslCert"/>; unset = the key is in the certificate's file. Never printed.</summary>
    [ConfigName("sslkey")] public string? SslKey { get; init; }
    /// <summary>Shown in pg_stat_activity and the server log (PostgreSQL's <c>application_name</c>).</summary>
    public string ApplicationName { get; init; } = "polystore";
    /// <summary>Seconds a command may run before it is cancelled (0 = no limit).</summary>
    public int CommandTimeout { get; init; } = 30;
    /// <summary>
    /// The servers of a high-availability group, <c>host:port</c> each (<c>[address]:port</c> for IPv6; a bare host takes
    /// <see cref="Port"/>), e.g. the hosts of pg_auto_failover's or Patroni's multi-host URI. When set it replaces
    /// <see cref="Host"/>: each connection goes to whichever of them <see cref="TargetSessionAttributes"/> asks for, so
    /// after a failover new connections find the new primary.
    /// </summary>
    public List<string> Hosts { get; init; } = [];
    /// <summary>
    /// Which of <see cref="Hosts"/> a connection goes to (libpq's <c>target_session_attrs</c>); <c>primary</c> when not set.
    /// Only meaningful with <see cref="Hosts"/>.
    /// </summary>
    public PostgresTargetSession? TargetSessionAttributes { get; init; }
    /// <summary>
    /// What <see cref="Host"/> and <see cref="Port"/> reach: the server itself, or a connection pooler whose pooling
    /// mode limits what a connection may rely on (declared, not detected: a pooler answers like a server).
    /// </summary>
    public PostgresPooler Pooler { get; init; } = PostgresPooler.None;
    /// <summary>
    /// The server itself, bypassing the pooler, for what needs a session of its own (LISTEN, session advisory locks);
    /// unset = none. Database, user and password default to this section's.
    /// </summary>
    public PostgresDirectSettings? Direct { get; init; }
}

/// <summary>What <c>connection.host</c> reaches.</summary>
public enum PostgresPooler
{
    /// <summary>The PostgreSQL server itself, or a pooler in session mode (one server connection per client connection).</summary>
    [ConfigName("none")] None,
    /// <summary>
    /// PgBouncer in transaction pooling mode: each transaction may run on a different server connection, so nothing
    /// may outlive a transaction (no prepared statements, session settings, LISTEN or session locks).
    /// </summary>
    [ConfigName("pgbouncer-transaction")] PgBouncerTransaction,
}

/// <summary><c>connection.direct:</c> the PostgreSQL server behind a pooler, reached without it.</summary>
public sealed class PostgresDirectSettings
{
    /// <summary>The server's host name or address.</summary>
    public string Host { get; init; } = "";
    /// <summary>The server's port.</summary>
    public int Port { get; init; } = 5432;
    /// <summary>Database name on the server; unset = <c>connection.database</c> (a pooler may alias it).</summary>
    public string? Database { get; init; }
    /// <summary>Login role; unset = <c>connection.user</c>.</summary>
    public string? User { get; init; }
    /// <summary>Password; unset = <c>connection.password</c>. Never printed.</summary>
    [Secret] public string? Password { get; init; }
}

/// <summary>libpq's sslmode values.</summary>
public enum PostgresSslMode
{
    /// <summary>No TLS.</summary>
    [ConfigName("disable")] Disable,
    /// <summary>Plain first, TLS if the server demands it.</summary>
    [ConfigName("allow")] Allow,
    /// <summary>TLS if the server offers it.</summary>
    [ConfigName("prefer")] Prefer,
    /// <summary>TLS always, without certificate checks.</summary>
    [ConfigName("require")] Require,
    /// <summary>TLS with a certificate chain check.</summary>
    [ConfigName("verify-ca")] VerifyCa,
    /// <summary>TLS with chain and host name checks.</summary>
    [ConfigName("verify-full")] VerifyFull,
}

/// <summary><c>pool:</c> in postgresql.yaml. Sizes follow SQLAlchemy: up to <see cref="MaxSize"/> + <see cref="MaxOverflow"/> connections at once.</summary>
public sealed class PostgresPoolSettings
{
    /// <summary>Connections kept open even when idle.</summary>
    public int MinSize { get; init; }
    /// <summary>Connections the pool grows to under normal load.</summary>
    public int MaxSize { get; init; } = 20;
    /// <summary>Extra connections allowed in bursts; closed again once idle.</summary>
    public int MaxOverflow { get; init; } = 10;
    /// <summary>Seconds after which a connection is closed and replaced (0 = never).</summary>
    public int PoolRecycle { get; init; } = 3600;
    /// <summary>Check a pooled connection with a round trip before handing it out, and replace it if dead.</summary>
    public bool PoolPrePing { get; init; }
    /// <summary>Seconds to wait for a free connection when the pool is exhausted.</summary>
    public int PoolTimeout { get; init; } = 30;
}

/// <summary><c>performance:</c> in postgresql.yaml.</summary>
public sealed class PostgresPerformanceSettings
{
    /// <summary>Distinct SQL statements tracked per connection; 0 turns automatic preparation off (needed behind PgBouncer in transaction mode).</summary>
    public int StatementCacheSize { get; init; } = 1024;
    /// <summary>Statements kept prepared on the server per connection.</summary>
    public int PreparedStatementCacheSize { get; init; } = 256;
    /// <summary>PostgreSQL's JIT compiler; off suits short OLTP queries, whose plans JIT only slows down.</summary>
    public bool Jit { get; init; }
}

/// <summary><c>replication:</c> in postgresql.yaml.</summary>
public sealed class PostgresReplicationSettings
{
    /// <summary>Standby servers that serve reads.</summary>
    public List<PostgresHost> ReadReplicas { get; init; } = [];
    /// <summary>How reads are spread over the replicas.</summary>
    public PostgresLoadBalance LoadBalance { get; init; } = PostgresLoadBalance.RoundRobin;
}

/// <summary>A host and port.</summary>
public sealed class PostgresHost
{
    /// <summary>Host name or address.</summary>
    public string Host { get; init; } = "";
    /// <summary>Port.</summary>
    public int Port { get; init; } = 5432;
}

/// <summary>How reads are spread over replicas.</summary>
public enum PostgresLoadBalance
{
    /// <summary>Each new connection goes to the next host in turn.</summary>
    [ConfigName("round_robin")] RoundRobin,
    /// <summary>Hosts are tried in the order listed.</summary>
    [ConfigName("none")] None,
}
