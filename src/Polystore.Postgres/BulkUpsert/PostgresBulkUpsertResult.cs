namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// What a bulk upsert did, counted by the server: the transaction's own table counters around the statement
/// for plain tables without triggers or rules, else <c>RETURNING xmax = 0</c>.
/// </summary>
/// <param name="RowsReceived">Rows read from the caller's sequence.</param>
/// <param name="Inserted">Rows that did not exist and were inserted.</param>
/// <param name="Updated">Existing rows that were updated.</param>
/// <param name="Commits">Transactions committed (1 in the default all-or-nothing mode).</param>
/// <param name="Elapsed">Wall-clock time of the whole operation.</param>
public sealed record PostgresBulkUpsertResult(long RowsReceived, long Inserted, long Updated, int Commits, TimeSpan Elapsed)
{
    /// <summary>
    /// Rows received but not written: later duplicates of a conflict key within the batch (the last one
    /// wins), or conflicting rows when no column is updated (DO NOTHING).
    /// </summary>
    public long Skipped => RowsReceived - Inserted - Updated;

    /// <summary>Rows received per second of <see cref="Elapsed"/>.</summary>
    public double RowsPerSecond => Elapsed.TotalSeconds > 0 ? RowsReceived / Elapsed.TotalSeconds : 0;
}
