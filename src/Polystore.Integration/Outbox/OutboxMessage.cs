namespace Polystore.Integration.Outbox;

/// <summary>An event to append to the outbox, in the same transaction as the command's writes.</summary>
/// <param name="Stream">The kind of aggregate, for example <c>user</c>.</param>
/// <param name="AggregateId">Which aggregate changed.</param>
/// <param name="Version">The aggregate's version after the change; projections use it to ignore stale or duplicate events.</param>
/// <param name="Type">The event type, for example <c>user.created</c>.</param>
/// <param name="PayloadJson">The event body as JSON.</param>
public sealed record OutboxMessage(string Stream, string AggregateId, long Version, string Type, string PayloadJson);
