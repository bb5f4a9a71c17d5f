namespace Polystore.Postgres.BulkUpsert;

/// <summary>A transaction whose COMMIT was sent when the connection was lost: its id, and what it would have written.</summary>
internal sealed record InDoubtCommit(string TransactionId, long Rows, long Inserted, long Updated, UpsertTechniques Technique);
