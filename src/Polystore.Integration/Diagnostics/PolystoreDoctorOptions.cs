using Polystore.Mongo.Diagnostics;
using Polystore.Postgres.Diagnostics;
using Polystore.Redis.Diagnostics;

namespace Polystore.Integration.Diagnostics;

/// <summary>How <see cref="PolystoreDoctor"/> runs: per-check timeout, concurrency and each store's thresholds.</summary>
public sealed record PolystoreDoctorOptions
{
    /// <summary>How long each check may run before it is reported as timed out (default 15 s).</summary>
    public TimeSpan CheckTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How many checks run at once (default 8).</summary>
    public int MaxConcurrency { get; init; } = 8;

    /// <summary>PostgreSQL thresholds; null = the defaults.</summary>
    public PostgresDiagnosticOptions? Postgres { get; init; }

    /// <summary>Redis thresholds; null = the defaults.</summary>
    public RedisDiagnosticOptions? Redis { get; init; }

    /// <summary>MongoDB thresholds; null = the defaults.</summary>
    public MongoDiagnosticOptions? Mongo { get; init; }

    internal void Validate()
    {
        if (CheckTimeout <= TimeSpan.Zero || CheckTimeout > TimeSpan.FromHours(1))
            throw new ArgumentOutOfRangeException(nameof(CheckTimeout), CheckTimeout, $"{nameof(CheckTimeout)} must be more than 0 and at most 1 hour.");
        if (MaxConcurrency is < 1 or > 64)
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrency), MaxConcurrency, $"{nameof(MaxConcurrency)} must be between 1 and 64.");
    }
}
