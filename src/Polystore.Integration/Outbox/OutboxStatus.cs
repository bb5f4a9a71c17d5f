namespace Polystore.Integration.Outbox;

/// <summary>How far a subscriber is behind the outbox.</summary>
/// <param name="Subscriber">The subscriber name.</param>
/// <param name="Pending">Events appended but not yet delivered to it.</param>
/// <param name="OldestPendingAge">Age of the oldest undelivered event (the backlog age), or null when caught up.</param>
/// <param name="CheckpointAge">Time since its checkpoint last moved.</param>
/// <param name="DeadLetters">Events it gave up on.</param>
public sealed record OutboxStatus(string Subscriber, long Pending, TimeSpan? OldestPendingAge, TimeSpan? CheckpointAge, long DeadLetters);
