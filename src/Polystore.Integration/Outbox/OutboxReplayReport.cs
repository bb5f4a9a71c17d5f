namespace Polystore.Integration.Outbox;

/// <summary>What <see cref="OutboxDeadLetters.ReplayAsync"/> did.</summary>
/// <param name="Replayed">Events delivered again (in commit order) and removed from the dead letters.</param>
/// <param name="NotFound">Requested events that are not dead letters of the subscriber (never were, or already replayed or dropped: see <see cref="OutboxDeadLetters.GetLogAsync"/>).</param>
public sealed record OutboxReplayReport(IReadOnlyList<long> Replayed, IReadOnlyList<long> NotFound);
