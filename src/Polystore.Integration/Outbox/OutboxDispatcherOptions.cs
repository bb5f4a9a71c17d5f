namespace Polystore.Integration.Outbox;

/// <summary>Tuning for <see cref="OutboxDispatcher"/>.</summary>
public sealed record OutboxDispatcherOptions
{
    /// <summary>Events handled per transaction.</summary>
    public int BatchSize { get; init; } = 256;
    /// <summary>How often to look for events when no notification arrives (the safety net for lost NOTIFYs).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Attempts before an event is moved to the dead-letter table.</summary>
    public int MaxAttempts { get; init; } = 5;
    /// <summary>The first retry delay; doubled per attempt, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(100);
    /// <summary>The longest retry delay.</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option out of range.</summary>
    internal void Validate()
    {
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, $"{nameof(BatchSize)} must be at least 1.");
        if (MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, $"{nameof(MaxAttempts)} must be at least 1.");
        if (PollInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(PollInterval), PollInterval, $"{nameof(PollInterval)} must be positive.");
        if (RetryBaseDelay < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RetryBaseDelay), RetryBaseDelay, $"{nameof(RetryBaseDelay)} must not be negative.");
        if (RetryMaxDelay < RetryBaseDelay)
            throw new ArgumentOutOfRangeException(nameof(RetryMaxDelay), RetryMaxDelay, $"{nameof(RetryMaxDelay)} must be at least {nameof(RetryBaseDelay)} ({RetryBaseDelay}).");
    }
}
