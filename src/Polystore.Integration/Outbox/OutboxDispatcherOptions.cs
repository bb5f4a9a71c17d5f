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

    /// <summary>
    /// How often the dispatcher measures its subscriber's backlog for the <c>polystore.outbox.backlog</c> and
    /// <c>polystore.outbox.lag</c> gauges (one <see cref="OutboxMonitor"/> query; only while someone observes them).
    /// Default 10 s; zero measures around every call of <see cref="OutboxDispatcher.ProcessAvailableAsync"/> and before every batch.
    /// </summary>
    public TimeSpan BacklogMeasureInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option out of range.</summary>
    internal void Validate()
    {
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, $"{nameof(BatchSize)} must be at least 1.");
        if (MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, $"{nameof(MaxAttempts)} must be at least 1.");
        if (PollInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(PollInterval), PollInterval, $"{nameof(PollInterval)} must be positive.");
        if (RetryBaseDelay < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RetryBaseDelay), RetryBaseDelay, $"{nameof(RetryBaseDelay)} must not be negative.");
        if (RetryMaxDelay < RetryBaseDelay)
            throw new ArgumentOutOfRangeException(nameof(RetryMaxDelay), RetryMaxDelay, $"{nameof(RetryMaxDelay)} must be at least {nameof(RetryBaseDelay)} ({RetryBaseDelay}).");
        if (BacklogMeasureInterval < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(BacklogMeasureInterval), BacklogMeasureInterval, $"{nameof(BacklogMeasureInterval)} must not be negative.");
    }
}
