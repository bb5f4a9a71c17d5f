namespace Polystore.Integration.Transactions;

/// <summary>What a multi-store commit did, store by store.</summary>
/// <param name="Committed">The stores that committed, in order.</param>
/// <param name="Failed">The store whose commit failed, if any.</param>
/// <param name="Error">Why it failed (secrets removed), if any.</param>
/// <param name="CompensationsRun">Descriptions of the compensations that ran.</param>
/// <param name="CompensationsFailed">Descriptions and errors of compensations that themselves failed.</param>
public sealed record CommitReport(
    IReadOnlyList<string> Committed,
    string? Failed,
    string? Error,
    IReadOnlyList<string> CompensationsRun,
    IReadOnlyList<string> CompensationsFailed)
{
    /// <summary>True when some stores committed and another did not.</summary>
    public bool IsPartial => Failed is not null && Committed.Count > 0;

    /// <inheritdoc />
    public override string ToString() =>
        Failed is null
            ? $"committed: {string.Join(", ", Committed)}"
            : $"PARTIAL COMMIT: committed {string.Join(", ", Committed)}; {Failed} failed: {Error}; compensations run: {CompensationsRun.Count}" +
              (CompensationsFailed.Count > 0 ? $", failed: {string.Join("; ", CompensationsFailed)}" : "");
}
