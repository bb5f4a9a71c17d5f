namespace Polystore.Integration.Outbox;

/// <summary>An outbox event as <see cref="RedisStreamRelay"/> wrote it to a Redis Stream.</summary>
/// <param name="EntryId">The stream entry id (what is acknowledged).</param>
/// <param name="EventId">The outbox event id: the same on every redelivery, so an inbox deduplicates by it.</param>
/// <param name="Type">The event type.</param>
/// <param name="Stream">The kind of aggregate.</param>
/// <param name="AggregateId">Which aggregate changed.</param>
/// <param name="Version">The aggregate's version after the change.</param>
/// <param name="PayloadJson">The event body as JSON.</param>
public sealed record RelayedEvent(string EntryId, long EventId, string Type, string Stream, string AggregateId, long Version, string PayloadJson);
