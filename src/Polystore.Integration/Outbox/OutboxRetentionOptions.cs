namespace Polystore.Integration.Outbox;

/// <summary>How <see cref="OutboxRetention"/> prunes delivered events.</summary>
public sealed record OutboxRetentionOptions
{
    /// <summary>
    /// Delivered events younger than this are kept (for audits and rebuilds from recent history); default 7 days.
    /// Zero prunes every event that every subscriber has passed.
    /// </summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromDays(7);

    /// <summary>Rows deleted per short transaction (1-100000); default 5000.</summary>
    public int BatchSize { get; init; } = 5000;

    /// <summary>How often the hosted job prunes; default 1 minute.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option out of range.</summary>
    internal void Validate()
    {
        if (MaxAge < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(MaxAge), MaxAge, $"{nameof(MaxAge)} must not be negative.");
        if (BatchSize is < 1 or > 100_000) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, $"{nameof(BatchSize)} must be between 1 and 100000.");
        if (Interval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(Interval), Interval, $"{nameof(Interval)} must be positive.");
    }
}
