namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// One upsert statement in its forms: counted with RETURNING, plain (counted from the table counters), and
/// as MERGE (null where it does not apply).
/// </summary>
internal sealed record UpsertSql(string Returning, string Plain, string? Merge);
