namespace Polystore.Integration.Projections;

/// <summary>What a rebuild did.</summary>
/// <param name="Table">The live table, now holding the rebuilt documents.</param>
/// <param name="EventsReplayed">Events read from the outbox history into the new version.</param>
/// <param name="Documents">Documents in the new version.</param>
public sealed record RebuildReport(string Table, long EventsReplayed, long Documents);
