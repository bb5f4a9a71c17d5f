using Npgsql;

namespace Polystore.Integration.Outbox;

/// <summary>
/// Receives outbox events in commit order. Each subscriber has its own checkpoint, advanced in the
/// same PostgreSQL transaction as <see cref="OutboxContext.Transaction"/>: writes made through that
/// transaction are applied exactly once; writes elsewhere (MongoDB, Redis) must be idempotent,
/// because a crash between them and the checkpoint commit delivers the event again.
/// </summary>
public interface IOutboxSubscriber
{
    /// <summary>A stable name; the checkpoint, attempts and dead letters are kept under it.</summary>
    string Name { get; }

    /// <summary>Handles one event. Throwing makes the dispatcher retry it with backoff, then dead-letter it.</summary>
    Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken);

    /// <summary>
    /// Handles a batch in commit order (one call per dispatcher transaction). Override it to write a
    /// whole batch in one round trip; the default calls <see cref="HandleAsync"/> for each event.
    /// </summary>
    async Task HandleBatchAsync(IReadOnlyList<OutboxEvent> events, OutboxContext context, CancellationToken cancellationToken)
    {
        foreach (var outboxEvent in events) await HandleAsync(outboxEvent, context, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>The transaction a batch of events is handled in, together with its checkpoint update.</summary>
public sealed class OutboxContext
{
    private readonly List<Func<CancellationToken, Task>> _afterCommit = [];

    internal OutboxContext(NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        Connection = connection;
        Transaction = transaction;
    }

    /// <summary>The open connection of the batch.</summary>
    public NpgsqlConnection Connection { get; }

    /// <summary>The batch's transaction; it also advances the subscriber's checkpoint.</summary>
    public NpgsqlTransaction Transaction { get; }

    /// <summary>
    /// Runs <paramref name="action"/> after the batch commits (for example, invalidating cache keys, so a
    /// reader cannot re-cache the old value between the invalidation and the commit). A failure there is
    /// logged and counted, not retried: the cache entry's TTL bounds the staleness.
    /// </summary>
    public void AfterCommit(Func<CancellationToken, Task> action) => _afterCommit.Add(action);

    internal IReadOnlyList<Func<CancellationToken, Task>> AfterCommitActions => _afterCommit;
}

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

    internal void Validate()
    {
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "must be at least 1");
        if (MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "must be at least 1");
        if (PollInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(PollInterval), PollInterval, "must be positive");
        if (RetryBaseDelay < TimeSpan.Zero || RetryMaxDelay < RetryBaseDelay) throw new ArgumentOutOfRangeException(nameof(RetryMaxDelay), RetryMaxDelay, "must be at least RetryBaseDelay");
    }
}
