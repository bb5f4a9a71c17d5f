namespace Polystore.Core.Diagnostics;

/// <summary>
/// How <see cref="PolystoreDoctor"/> runs: per-check timeout and concurrency. Each store's thresholds are set where
/// the store is registered (for example <c>AddPostgres(o =&gt; o.Diagnostics = ...)</c>).
/// </summary>
public sealed record PolystoreDoctorOptions
{
    /// <summary>How long each check may run before it is reported as timed out (default 15 s).</summary>
    public TimeSpan CheckTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How many checks run at once (default 8).</summary>
    public int MaxConcurrency { get; init; } = 8;

    internal void Validate()
    {
        if (CheckTimeout <= TimeSpan.Zero || CheckTimeout > TimeSpan.FromHours(1))
            throw new ArgumentOutOfRangeException(nameof(CheckTimeout), CheckTimeout, $"{nameof(CheckTimeout)} must be more than 0 and at most 1 hour.");
        if (MaxConcurrency is < 1 or > 64)
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrency), MaxConcurrency, $"{nameof(MaxConcurrency)} must be between 1 and 64.");
    }
}
