namespace Polystore.Integration.Outbox;

/// <summary>An event read back from the outbox, in commit order.</summary>
/// <param name="Id">The row id (unique, but not commit order on its own).</param>
/// <param name="TransactionId">The id of the transaction that appended it (<c>xid8</c>); with <see cref="Id"/> it orders events.</param>
/// <param name="Stream">The kind of aggregate.</param>
/// <param name="AggregateId">Which aggregate changed.</param>
/// <param name="Version">The aggregate's version after the change.</param>
/// <param name="Type">The event type.</param>
/// <param name="PayloadJson">The event body as JSON.</param>
/// <param name="CreatedAt">When it was appended.</param>
public sealed record OutboxEvent(
    long Id,
    ulong TransactionId,
    string Stream,
    string AggregateId,
    long Version,
    string Type,
    string PayloadJson,
    DateTimeOffset CreatedAt);
