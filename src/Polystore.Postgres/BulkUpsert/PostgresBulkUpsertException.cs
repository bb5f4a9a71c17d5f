namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// A bulk upsert failed after it started reading rows. Every failure from then on, whatever its cause (the server's
/// error, the caller's row sequence or row mapping throwing, a lost connection, a timeout), is this exception, with
/// the cause as <see cref="Exception.InnerException"/> and what was kept in <see cref="RowsCommitted"/>: nothing in the
/// atomic mode (the transaction was rolled back), the chunks committed before the failure in chunked and parallel modes.
/// A cancellation is <see cref="PostgresBulkUpsertCanceledException"/> instead, with the same counts. Failures before
/// the first row is read (an argument, the options, the catalog check, opening the connections) are thrown as they
/// are, and nothing was written.
/// </summary>
public sealed class PostgresBulkUpsertException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException(string message, long rowsCommitted, Exception innerException) : this(message, rowsCommitted, 0, innerException) { }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException(string message, long rowsCommitted, long rowsInDoubt, Exception innerException) : base(message, innerException)
    {
        RowsCommitted = rowsCommitted;
        RowsInDoubt = rowsInDoubt;
    }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException() { }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>
    /// Rows of the caller's sequence in transactions that committed before the failure (0 in the atomic mode). A row
    /// whose key repeats within a chunk is counted here but written once, so with repeated keys the table gains fewer rows.
    /// </summary>
    public long RowsCommitted { get; }

    /// <summary>
    /// Rows in transactions whose COMMIT was sent when the connection was lost, and whose outcome the server could not
    /// be asked about afterwards (it was down): each such transaction either committed whole or not at all. The message
    /// gives their transaction ids to check with <c>pg_xact_status</c> once the server is back. Usually 0.
    /// </summary>
    public long RowsInDoubt { get; }
}
