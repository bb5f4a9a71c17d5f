namespace Polystore.Integration.Outbox;

/// <summary>What one <see cref="OutboxRetention.PruneAsync"/> run did.</summary>
/// <param name="Deleted">Events removed.</param>
/// <param name="Batches">Delete statements run (each its own short transaction).</param>
/// <param name="Elapsed">Wall time of the run.</param>
/// <param name="SlowestSubscriber">The subscriber with the lowest checkpoint (nothing past it is pruned), or null when there is none.</param>
/// <param name="SlowestCheckpointEventId">The event id of that checkpoint (0 when it has delivered nothing).</param>
public sealed record OutboxPruneReport(long Deleted, int Batches, TimeSpan Elapsed, string? SlowestSubscriber, long SlowestCheckpointEventId);
