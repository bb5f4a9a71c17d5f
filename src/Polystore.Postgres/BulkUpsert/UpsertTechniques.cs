namespace Polystore.Postgres.BulkUpsert;

/// <summary>How the rows of a batch reached the server: as arrays through <c>unnest</c>, or streamed with COPY into a staging table.</summary>
[Flags]
internal enum UpsertTechniques
{
    None = 0,
    Unnest = 1,
    Copy = 2,
}
