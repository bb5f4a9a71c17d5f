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
    DateTimeOffset CreatedAt)
{
    /// <summary>
    /// The W3C <c>traceparent</c> of the activity that appended the event (null when none was current): the dispatch
    /// span links to it, so one trace leads from the command across the commit to its delivery.
    /// </summary>
    public string? TraceParent { get; init; }

    /// <summary>The W3C <c>tracestate</c> that went with <see cref="TraceParent"/>, if any.</summary>
    public string? TraceState { get; init; }
}
