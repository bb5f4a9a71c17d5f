using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Statements that ride along with a transaction's own batches instead of costing round trips of their own: the
/// check of a cached plan (in the first batch, before any row is written) and the transaction id that
/// <see cref="UpsertCommit"/> needs to settle a COMMIT whose connection is lost (in the batch that applies the rows).
/// </summary>
internal sealed class UpsertFirstTrip
{
    /// <summary>Alias of the transaction id's column, to find its result among the batch's.</summary>
    public const string TransactionIdColumn = "polystore_xact";

    private readonly UpsertTableInfo? _check;
    private bool _checkSent;
    private bool _firstBatchDone;

    /// <param name="check">The cached catalog facts to check in the first batch; null when they are known to be current.</param>
    /// <param name="wantTransactionId">Whether the caller commits (and so needs the transaction id).</param>
    public UpsertFirstTrip(UpsertTableInfo? check, bool wantTransactionId)
    {
        _check = check;
        WantTransactionId = wantTransactionId;
    }

    /// <summary>Nothing rides along: a plan known to be current, a transaction the caller commits.</summary>
    public static UpsertFirstTrip None => new(null, wantTransactionId: false);

    public bool WantTransactionId { get; }

    /// <summary>The transaction id, once a batch returned it (null: <see cref="UpsertCommit"/> asks itself).</summary>
    public string? TransactionId { get; set; }

    /// <summary>True while the check has yet to be sent.</summary>
    public bool CheckPending => _check is not null && !_checkSent;

    /// <summary>Adds the check to <paramref name="batch"/> once (the first batch of the transaction).</summary>
    public void AddCheck(NpgsqlBatch batch)
    {
        if (!CheckPending) return;
        _checkSent = true;
        batch.BatchCommands.Add(UpsertTableCache.CheckCommand(_check!));
    }

    /// <summary>Appends the transaction id statement when it is wanted and not read yet.</summary>
    public void AddTransactionId(NpgsqlBatch batch, NpgsqlConnection connection)
    {
        if (WantTransactionId && TransactionId is null) batch.BatchCommands.Add(new NpgsqlBatchCommand(UpsertCommit.CurrentTransactionId(connection) + " AS " + TransactionIdColumn));
    }

    /// <summary>Marks the batch that carried the check as done: errors after it never mean a stale plan.</summary>
    public void FirstBatchDone() => _firstBatchDone = _checkSent;

    /// <summary>
    /// True when <paramref name="e"/>, raised by the batch that carried the check, says the cached plan is stale: the
    /// check failed (division by zero), or a statement met a changed table. Npgsql does not say which statement of a
    /// batch failed, so the codes decide; a genuine error of that kind only costs one retry with a plan read afresh,
    /// which then fails the same way.
    /// </summary>
    public bool IsStale(Exception e) => _checkSent && !_firstBatchDone && e is PostgresException p &&
        (p.SqlState == PostgresErrorCodes.DivisionByZero || UpsertTableCache.IsSchemaError(p));
}
