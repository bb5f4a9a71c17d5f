namespace Polystore.Redis.Diagnostics;

/// <summary>Thresholds of the Redis checks; the defaults are the ones the README lists.</summary>
public sealed class RedisDiagnosticOptions
{
    /// <summary>used_memory as a fraction of maxmemory that is a warning (default 0.75).</summary>
    public double MemoryWarning { get; init; } = 0.75;
    /// <summary>... and critical (default 0.90).</summary>
    public double MemoryCritical { get; init; } = 0.90;
    /// <summary>At most this many keys are sampled with SCAN for the TTL check (default 1,000).</summary>
    public int TtlSampleSize { get; init; } = 1_000;
    /// <summary>SCAN MATCH pattern for the TTL sample (default <c>*</c>).</summary>
    public string ScanPattern { get; init; } = "*";
    /// <summary>Sampled keys without a TTL, as a fraction, that is a warning (default 0.5) once at least <see cref="TtlMinSample"/> keys were sampled.</summary>
    public double NoTtlWarning { get; init; } = 0.5;
    /// <summary>Keys the TTL sample needs before it is judged (default 20).</summary>
    public int TtlMinSample { get; init; } = 20;
    /// <summary>SLOWLOG entries read (default 10).</summary>
    public int SlowlogEntries { get; init; } = 10;
    /// <summary>A SLOWLOG entry at least this long is a warning (default 100 ms).</summary>
    public TimeSpan SlowCommandWarning { get; init; } = TimeSpan.FromMilliseconds(100);
    /// <summary>connected_clients as a fraction of maxclients that is a warning (default 0.75).</summary>
    public double ClientsWarning { get; init; } = 0.75;
    /// <summary>... and critical (default 0.90).</summary>
    public double ClientsCritical { get; init; } = 0.90;
    /// <summary>Keyspace hit ratio below which is a warning (default 0.5), judged after <see cref="HitRatioMinLookups"/>.</summary>
    public double HitRatioWarning { get; init; } = 0.5;
    /// <summary>Lookups (hits + misses) before the hit ratio is judged (default 1,000).</summary>
    public long HitRatioMinLookups { get; init; } = 1_000;
    /// <summary>tcp-backlog below this is a warning (default 511, Redis's own default).</summary>
    public int TcpBacklogMinimum { get; init; } = 511;
    /// <summary>A server's TLS certificate that expires within this is a warning (default 30 days); an expired one is critical.</summary>
    public TimeSpan TlsExpiryWarning { get; init; } = TimeSpan.FromDays(30);
}
