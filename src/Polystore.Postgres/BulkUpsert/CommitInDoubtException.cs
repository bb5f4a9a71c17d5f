namespace Polystore.Postgres.BulkUpsert;

/// <summary>The connection was lost during a COMMIT: the transaction may or may not have committed.</summary>
internal sealed class CommitInDoubtException(InDoubtCommit commit, Exception innerException)
    : Exception($"the connection was lost during the COMMIT of transaction {commit.TransactionId}", innerException)
{
    public InDoubtCommit Commit { get; } = commit;
}
