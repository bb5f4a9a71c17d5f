namespace Polystore.Mongo.Diagnostics;

/// <summary>Thresholds of the MongoDB checks; the defaults are the ones the README lists.</summary>
public sealed class MongoDiagnosticOptions
{
    /// <summary>An operation running at least this many seconds is reported (default 10).</summary>
    public int SlowOperationSeconds { get; init; } = 10;
    /// <summary>... and is critical from this many seconds (default 300).</summary>
    public int SlowOperationCriticalSeconds { get; init; } = 300;
    /// <summary>A secondary this far behind the primary is a warning (default 30 s).</summary>
    public TimeSpan ReplicationLagWarning { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>... and critical (default 5 min).</summary>
    public TimeSpan ReplicationLagCritical { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>An oplog window shorter than this is a warning (default 24 h): a secondary down longer must resync from scratch.</summary>
    public TimeSpan OplogWindowWarning { get; init; } = TimeSpan.FromHours(24);
    /// <summary>... and critical (default 1 h).</summary>
    public TimeSpan OplogWindowCritical { get; init; } = TimeSpan.FromHours(1);
    /// <summary>At most this many findings per check (default 20).</summary>
    public int MaxFindingsPerCheck { get; init; } = 20;
}
