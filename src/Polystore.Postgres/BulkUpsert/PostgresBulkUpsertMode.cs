namespace Polystore.Postgres.BulkUpsert;

/// <summary>How a bulk upsert commits.</summary>
public enum PostgresBulkUpsertMode
{
    /// <summary>One transaction for the whole sequence: all rows or none (the default).</summary>
    Atomic,

    /// <summary>
    /// One transaction per <see cref="PostgresBulkUpsertOptions.ChunkSize"/> rows on one connection: a failure
    /// keeps the chunks already committed. For loads too large for one transaction.
    /// </summary>
    Chunked,

    /// <summary>
    /// Chunked commits spread over <see cref="PostgresBulkUpsertOptions.Parallelism"/> connections at once. Not atomic.
    /// Each row goes to the connection its conflict key hashes to, so a key's rows are applied in input order:
    /// the last one wins, across chunks as within one.
    /// </summary>
    Parallel,
}
