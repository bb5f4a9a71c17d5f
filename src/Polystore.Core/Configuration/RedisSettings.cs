namespace Polystore.Core.Configuration;

/// <summary>The contents of <c>redis.yaml</c>.</summary>
public sealed class RedisSettings
{
    /// <summary>Server address, password and database.</summary>
    public RedisConnectionSettings Connection { get; init; } = new();
    /// <summary>Connection limits and timeouts.</summary>
    public RedisPoolSettings Pool { get; init; } = new();
    /// <summary>Redis Cluster nodes.</summary>
    public RedisClusterSettings Cluster { get; init; } = new();
    /// <summary>Redis Sentinel.</summary>
    public RedisSentinelSettings Sentinel { get; init; } = new();
    /// <summary>The CA the server's certificate is checked against, and a client certificate, for <c>rediss://</c>.</summary>
    public RedisTlsSettings Tls { get; init; } = new();
}

/// <summary><c>connection:</c> in redis.yaml.</summary>
public sealed class RedisConnectionSettings
{
    /// <summary>redis:// or rediss:// (TLS) URL; a password inside it is never printed.</summary>
    [Secret] public string Url { get; init; } = "redis://localhost:6379";
    /// <summary>Password (AUTH); overrides one inside <see cref="Url"/>.</summary>
    [Secret] public string? Password { get; init; }
    /// <summary>Database number (standalone and sentinel only).</summary>
    public int Db { get; init; }
    /// <summary>Client name shown in CLIENT LIST.</summary>
    public string ClientName { get; init; } = "polystore";
}

/// <summary><c>pool:</c> in redis.yaml. A multiplexer shares one connection per server, so only the timeouts map directly.</summary>
public sealed class RedisPoolSettings
{
    /// <summary>Upper bound on connections this process opens (checked, see the README's mapping).</summary>
    public int MaxConnections { get; init; } = 100;
    /// <summary>Accepted for compatibility; a multiplexer keeps its connections open.</summary>
    public int MinIdle { get; init; }
    /// <summary>Accepted for compatibility; a multiplexer keeps its connections open.</summary>
    public int MaxIdle { get; init; }
    /// <summary>Seconds to connect.</summary>
    public double ConnectionTimeout { get; init; } = 5;
    /// <summary>Seconds a command may wait for its reply.</summary>
    public double SocketTimeout { get; init; } = 5;
}

/// <summary><c>cluster:</c> in redis.yaml.</summary>
public sealed class RedisClusterSettings
{
    /// <summary>Connect to a Redis Cluster through <see cref="Nodes"/>.</summary>
    public bool Enabled { get; init; }
    /// <summary>Seed nodes as redis:// URLs; the rest of the cluster is discovered.</summary>
    [Secret] public List<string> Nodes { get; init; } = [];
}

/// <summary><c>sentinel:</c> in redis.yaml.</summary>
public sealed class RedisSentinelSettings
{
    /// <summary>Find the primary through Sentinel.</summary>
    public bool Enabled { get; init; }
    /// <summary>The monitored primary's name.</summary>
    public string? MasterName { get; init; }
    /// <summary>Sentinel endpoints.</summary>
    public List<RedisHost> Sentinels { get; init; } = [];
    /// <summary>
    /// Password for the Sentinels themselves, if they require one. The Redis client sends one password to the sentinels
    /// and the servers, so it must equal <c>connection.password</c> when both are set; alone, it is used for both.
    /// </summary>
    [Secret] public string? Password { get; init; }
}

/// <summary>A host and port.</summary>
public sealed class RedisHost
{
    /// <summary>Host name or address.</summary>
    public string Host { get; init; } = "";
    /// <summary>Port.</summary>
    public int Port { get; init; } = 26379;
}

/// <summary>
/// <c>tls:</c> in redis.yaml: whom a TLS connection (<c>rediss://</c>) trusts and which certificate it presents. Unset,
/// the server's certificate is checked against the system's trust store and no client certificate is sent. Paths are
/// PEM files, absolute or relative to the process's current folder; they are read once, when the connection is built.
/// </summary>
public sealed class RedisTlsSettings
{
    /// <summary>
    /// The certificate authority (one or more PEM certificates) the server's chain must end at, instead of the system's
    /// trust store; the server's host name is still checked against its certificate.
    /// </summary>
    public string? CaCertificate { get; init; }
    /// <summary>A client certificate (PEM) presented to a server that asks for one (<c>tls-auth-clients yes</c>, mutual TLS).</summary>
    public string? ClientCertificate { get; init; }
    /// <summary>
    /// The unencrypted PEM private key of <see cref="ClientCertificate"/>; unset = the key is in the certificate's file.
    /// Its contents are never printed, not even in an error.
    /// </summary>
    public string? ClientKey { get; init; }
}
