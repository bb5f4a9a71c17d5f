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
