using Polystore.Postgres;

namespace Polystore.Integration.Outbox;

/// <summary>
/// How <see cref="Microsoft.Extensions.DependencyInjection.OutboxPolystoreBuilderExtensions.AddOutboxDispatcher{TSubscriber}"/> runs one subscriber's dispatcher: the
/// outbox schema, the dispatcher's tuning and the thresholds of its health check. Defaults are those of
/// <see cref="OutboxDispatcherOptions"/>.
/// </summary>
public sealed class OutboxDispatcherHostingOptions
{
    private static readonly OutboxDispatcherOptions Defaults = new();

    /// <summary>The schema holding the outbox tables (a plain lower-case identifier); default <c>polystore</c>.</summary>
    public string Schema { get; set; } = "polystore";

    /// <summary>Events handled per transaction.</summary>
    public int BatchSize { get; set; } = Defaults.BatchSize;

    /// <summary>How often to look for events when no notification arrives.</summary>
    public TimeSpan PollInterval { get; set; } = Defaults.PollInterval;

    /// <summary>Attempts before an event is moved to the dead-letter table.</summary>
    public int MaxAttempts { get; set; } = Defaults.MaxAttempts;

    /// <summary>The first retry delay; doubled per attempt, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = Defaults.RetryBaseDelay;

    /// <summary>The longest retry delay.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = Defaults.RetryMaxDelay;

    /// <summary>The health check turns Degraded when the subscriber's backlog is older than this (or it has dead letters); default 30 s.</summary>
    public TimeSpan DegradedAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The health check turns Unhealthy when the subscriber's backlog is older than this; default 5 min.</summary>
    public TimeSpan UnhealthyAfter { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Turns on retention: the host also prunes delivered events older than this (see <see cref="OutboxRetention"/>).
    /// Null (the default) keeps every event.
    /// </summary>
    public TimeSpan? RetentionMaxAge { get; set; }

    /// <summary>Events deleted per retention transaction; default 5000.</summary>
    public int RetentionBatchSize { get; set; } = RetentionDefaults.BatchSize;

    /// <summary>How often retention runs; default 1 minute.</summary>
    public TimeSpan RetentionInterval { get; set; } = RetentionDefaults.Interval;

    private static readonly OutboxRetentionOptions RetentionDefaults = new();

    internal OutboxRetentionOptions? Retention => RetentionMaxAge is { } age
        ? new OutboxRetentionOptions { MaxAge = age, BatchSize = RetentionBatchSize, Interval = RetentionInterval }
        : null;

    internal OutboxDispatcherOptions Dispatcher => new()
    {
        BatchSize = BatchSize,
        PollInterval = PollInterval,
        MaxAttempts = MaxAttempts,
        RetryBaseDelay = RetryBaseDelay,
        RetryMaxDelay = RetryMaxDelay,
    };

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first option that is not usable.</summary>
    internal void Validate()
    {
        if (!PostgresIdentifier.IsPlain(Schema))
            throw new ArgumentException($"{nameof(Schema)} '{Schema}' is not a valid schema name: use 1-{PostgresIdentifier.MaxLength} lower-case letters, digits and underscores, starting with a letter or underscore.", nameof(Schema));
        Dispatcher.Validate();
        try
        {
            (Retention ?? new OutboxRetentionOptions { BatchSize = RetentionBatchSize, Interval = RetentionInterval }).Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            // Name the hosting option, not the inner one.
            var name = "Retention" + e.ParamName;
            throw new ArgumentOutOfRangeException(name, e.ActualValue, e.Message.Split(" (Parameter", 2)[0].Replace(e.ParamName!, name, StringComparison.Ordinal));
        }
        if (DegradedAfter <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(DegradedAfter), DegradedAfter, $"{nameof(DegradedAfter)} must be positive.");
        if (UnhealthyAfter < DegradedAfter)
            throw new ArgumentOutOfRangeException(nameof(UnhealthyAfter), UnhealthyAfter, $"{nameof(UnhealthyAfter)} must be at least {nameof(DegradedAfter)} ({DegradedAfter}).");
    }
}
