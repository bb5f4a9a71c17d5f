namespace Polystore.Postgres.Diagnostics;

/// <summary>
/// Thresholds of the PostgreSQL checks. The defaults are the ones the README lists; tests lower
/// them to provoke a condition quickly.
/// </summary>
public sealed class PostgresDiagnosticOptions
{
    /// <summary>Connections in use as a fraction of usable <c>max_connections</c> that is a warning (default 0.75).</summary>
    public double ConnectionsWarning { get; init; } = 0.75;
    /// <summary>... and that is critical (default 0.90).</summary>
    public double ConnectionsCritical { get; init; } = 0.90;
    /// <summary>A session idle in a transaction longer than this is reported (default 30 s).</summary>
    public TimeSpan IdleInTransactionAfter { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>... and is critical past this (default 10 min): it holds locks and stops vacuum.</summary>
    public TimeSpan IdleInTransactionCritical { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>A statement running longer than this is reported (default 30 s).</summary>
    public TimeSpan LongRunningAfter { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>... and is critical past this (default 15 min).</summary>
    public TimeSpan LongRunningCritical { get; init; } = TimeSpan.FromMinutes(15);
    /// <summary>A transaction holding the xmin horizon (it has a transaction id) open longer than this is reported (default 60 s): outbox delivery waits for it.</summary>
    public TimeSpan XminHorizonAfter { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>... and is critical past this (default 10 min).</summary>
    public TimeSpan XminHorizonCritical { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>A query waiting for a lock longer than this is critical (default 60 s); shorter waits are warnings.</summary>
    public TimeSpan BlockedCritical { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Pool connections in use as a fraction of its maximum that is a warning (default 0.90).</summary>
    public double PoolWarning { get; init; } = 0.90;
    /// <summary>A pg_stat_statements entry with a mean time at least this is a slow query (default 500 ms).</summary>
    public double SlowQueryMeanMs { get; init; } = 500;
    /// <summary>An unused index at least this large is a warning; smaller ones are info (default 1 MiB).</summary>
    public long UnusedIndexWarningBytes { get; init; } = 1L << 20;
    /// <summary>Sequential scans on a table before it can be a missing-index hint (default 50).</summary>
    public long SeqScanMinScans { get; init; } = 50;
    /// <summary>Live rows a table needs before its sequential scans matter (default 10,000).</summary>
    public long SeqScanMinRows { get; init; } = 10_000;
    /// <summary>Rows changed since the last analyze, as a fraction of live rows, that make statistics stale (default 0.2).</summary>
    public double StaleStatisticsFraction { get; init; } = 0.2;
    /// <summary>Rows changed since the last analyze below which statistics never count as stale (default 1,000).</summary>
    public long StaleStatisticsMinRows { get; init; } = 1_000;
    /// <summary>Buffer cache hit ratio below which is a warning (default 0.95), judged only past <see cref="CacheHitMinBlocks"/>.</summary>
    public double CacheHitWarning { get; init; } = 0.95;
    /// <summary>Blocks read (hit + from disk) before the cache hit ratio is judged (default 10,000).</summary>
    public long CacheHitMinBlocks { get; init; } = 10_000;
    /// <summary>A sequence this far to its limit (or its column's type limit) is a warning (default 0.75).</summary>
    public double SequenceWarning { get; init; } = 0.75;
    /// <summary>... and critical (default 0.90).</summary>
    public double SequenceCritical { get; init; } = 0.90;
    /// <summary><c>age(datfrozenxid)</c> as a fraction of 2^31 that is a warning (default 0.5).</summary>
    public double WraparoundWarning { get; init; } = 0.5;
    /// <summary>... and critical (default 0.75).</summary>
    public double WraparoundCritical { get; init; } = 0.75;
    /// <summary>Replication replay lag that is a warning (default 30 s).</summary>
    public TimeSpan ReplicationLagWarning { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>... and critical (default 5 min).</summary>
    public TimeSpan ReplicationLagCritical { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>WAL a standby has not replayed yet, in bytes, that is a warning (default 16 MiB, one WAL segment).</summary>
    public long ReplicationLagBytesWarning { get; init; } = 16L << 20;
    /// <summary>... and critical (default 1 GiB).</summary>
    public long ReplicationLagBytesCritical { get; init; } = 1L << 30;
    /// <summary>A server's TLS certificate that expires within this is a warning (default 30 days); an expired one is critical.</summary>
    public TimeSpan TlsExpiryWarning { get; init; } = TimeSpan.FromDays(30);
    /// <summary>At most this many findings per check (the worst first); default 20.</summary>
    public int MaxFindingsPerCheck { get; init; } = 20;
    /// <summary>Only look at objects (indexes, tables, sequences) in these schemas; null = every user schema.</summary>
    public IReadOnlyList<string>? Schemas { get; init; }
}
