namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// A bulk upsert was cancelled through its <see cref="CancellationToken"/> after it started reading rows. It derives
/// from <see cref="OperationCanceledException"/>, so code that treats cancellation apart from failure keeps doing so
/// (and the task ends Canceled), while <see cref="RowsCommitted"/> says what was kept: nothing in the atomic mode, the
/// chunks committed before the cancellation in chunked and parallel modes. A COMMIT that was sent is never cancelled
/// halfway, so the count is exact. The original cancellation is the <see cref="Exception.InnerException"/>.
/// </summary>
public sealed class PostgresBulkUpsertCanceledException : OperationCanceledException
{
    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertCanceledException(string message, long rowsCommitted, long rowsInDoubt, Exception innerException, CancellationToken token)
        : base(message, innerException, token)
    {
        RowsCommitted = rowsCommitted;
        RowsInDoubt = rowsInDoubt;
    }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertCanceledException() { }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertCanceledException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public PostgresBulkUpsertCanceledException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Rows of the caller's sequence in transactions that committed before the cancellation (0 in the atomic mode).</summary>
    public long RowsCommitted { get; }

    /// <summary>
    /// Rows whose COMMIT outcome is unknown because the connection was lost during it (see
    /// <see cref="PostgresBulkUpsertException.RowsInDoubt"/>); a cancellation alone never leaves any.
    /// </summary>
    public long RowsInDoubt { get; }
}
