namespace Polystore.Integration.Outbox;

/// <summary>An event a subscriber gave up on after its attempts, kept in <c>outbox_dead_letters</c> until replayed or dropped.</summary>
/// <param name="Subscriber">The subscriber that gave up.</param>
/// <param name="Event">The event as appended (stream, aggregate and version are empty for rows dead-lettered by versions that did not keep them).</param>
/// <param name="Attempts">How many times delivery was tried.</param>
/// <param name="LastError">The last failure's message (at most 2000 characters).</param>
/// <param name="FailedAt">When it was dead-lettered.</param>
public sealed record OutboxDeadLetter(string Subscriber, OutboxEvent Event, int Attempts, string LastError, DateTimeOffset FailedAt);
