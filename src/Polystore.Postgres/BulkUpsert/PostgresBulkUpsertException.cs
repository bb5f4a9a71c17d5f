namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// A bulk upsert failed after it started writing. The message says what was kept: nothing in the
/// atomic mode (the transaction was rolled back), the committed chunks in chunked and parallel modes.
/// The server's error is the inner exception.
/// </summary>
public sealed class PostgresBulkUpsertException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException(string message, long rowsCommitted, Exception innerException) : base(message, innerException) => RowsCommitted = rowsCommitted;

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException() { }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Rows received in transactions that committed before the failure (0 in the atomic mode).</summary>
    public long RowsCommitted { get; }
}
