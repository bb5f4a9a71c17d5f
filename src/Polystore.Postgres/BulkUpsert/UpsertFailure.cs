using System.Globalization;
using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Turns whatever stopped a bulk upsert after it began reading rows into the exception the caller gets: first it
/// settles in-doubt COMMITs with the server, then says what stays committed, what is in doubt, and why it stopped
/// (naming the setting to raise when a timeout did it).
/// </summary>
internal static class UpsertFailure
{
    public static async Task<Exception> CreateAsync(NpgsqlDataSource dataSource, PostgresBulkUpsertMode mode, string table, UpsertProgress progress,
        Exception cause, PostgresBulkUpsertOptions options, CancellationToken cancellationToken)
    {
        await UpsertCommit.SettleAsync(dataSource, progress, options.Logger).ConfigureAwait(false);
        return Create(mode, table, progress, cause, options, cancellationToken);
    }

    /// <summary>
    /// The plan of a call that has written nothing yet (<paramref name="mode"/> null: in the caller's transaction). The
    /// server failing the catalog read (its statement_timeout, a lost connection) becomes the mode's exception, naming
    /// the cause as any later failure would; a <see cref="Schema.PostgresSchemaException"/> or
    /// <see cref="PostgresPoolExhaustedException"/> says what to fix and passes as it is.
    /// </summary>
    public static async Task<PostgresBulkUpsertPlan<T>> PlanAsync<T>(Task<PostgresBulkUpsertPlan<T>> resolving, PostgresBulkUpsertMode? mode, string table,
        UpsertProgress progress, PostgresBulkUpsertOptions options, CancellationToken cancellationToken)
    {
        try
        {
            return await resolving.ConfigureAwait(false);
        }
        catch (NpgsqlException e) when (e is not PostgresPoolExhaustedException)
        {
            throw Create(mode, table, progress, e, options, cancellationToken);
        }
    }

    /// <summary>The exception for a failure in <paramref name="mode"/>; null is the caller's own transaction, where nothing is committed.</summary>
    public static Exception Create(PostgresBulkUpsertMode? mode, string table, UpsertProgress progress, Exception cause, PostgresBulkUpsertOptions options,
        CancellationToken cancellationToken)
    {
        if (cause is CommitInDoubtException { InnerException: { } lost }) cause = lost;
        var committed = progress.RowsCommitted;
        var inDoubt = progress.InDoubt.ToList();
        var inDoubtRows = inDoubt.Sum(c => c.Rows);
        var kept = mode is null ? "nothing was committed by it (the caller's transaction holds what was sent: roll it back)"
            : mode == PostgresBulkUpsertMode.Atomic && committed == 0 && inDoubtRows == 0 ? "nothing was written (the transaction was rolled back)"
            : string.Create(CultureInfo.InvariantCulture, $"{progress.Commits} chunk(s) ({committed:N0} rows) stay committed");
        if (inDoubt.Count > 0)
        {
            kept += string.Create(CultureInfo.InvariantCulture,
                $"; {inDoubtRows:N0} rows in {inDoubt.Count} transaction(s) are in doubt: the connection was lost during their COMMIT and the server could not be asked afterwards; " +
                $"once it is back, {string.Join(" and ", inDoubt.Select(UpsertCommit.StatusQuery))} says whether each committed (whole) or not");
        }
        if (mode is PostgresBulkUpsertMode.Chunked or PostgresBulkUpsertMode.Parallel || inDoubt.Count > 0) kept += "; no other row was written";
        var what = mode switch
        {
            PostgresBulkUpsertMode.Chunked => "chunked bulk upsert",
            PostgresBulkUpsertMode.Parallel => "parallel bulk upsert",
            null => "bulk upsert inside the caller's transaction",
            _ => "bulk upsert",
        };
        if (cause is OperationCanceledException)
        {
            var token = cancellationToken.IsCancellationRequested ? cancellationToken : ((OperationCanceledException)cause).CancellationToken;
            return new PostgresBulkUpsertCanceledException($"{what} into {table} was canceled; {kept}.", committed, inDoubtRows, cause, token);
        }
        return new PostgresBulkUpsertException($"{what} into {table} failed; {kept}: {Reason(cause, options)}", committed, inDoubtRows, cause);
    }

    /// <summary>Why it stopped, naming the setting when a timeout did it.</summary>
    private static string Reason(Exception cause, PostgresBulkUpsertOptions options) => cause switch
    {
        PostgresException { SqlState: PostgresErrorCodes.QueryCanceled } e when e.MessageText.Contains("statement timeout", StringComparison.Ordinal) =>
            $"{e.MessageText}: the server's statement_timeout (a setting of the server, database or role) ended a statement; raise it for this load, since {nameof(PostgresBulkUpsertOptions)}.{nameof(PostgresBulkUpsertOptions.CommandTimeout)} cannot lift it",
        PostgresException { SqlState: PostgresErrorCodes.LockNotAvailable } e when e.MessageText.Contains("lock timeout", StringComparison.Ordinal) =>
            $"{e.MessageText}: the server's lock_timeout ended a wait for a lock another session holds",
        PostgresException e => e.MessageText,
        NpgsqlException { InnerException: TimeoutException } and not PostgresPoolExhaustedException when options.CommandTimeout != Timeout.InfiniteTimeSpan =>
            $"no answer from the server within {nameof(PostgresBulkUpsertOptions)}.{nameof(PostgresBulkUpsertOptions.CommandTimeout)} ({options.CommandTimeoutSeconds.ToString(CultureInfo.InvariantCulture)} s): " +
            "a statement ran longer (a large batch, or a wait for another session's lock) or the server stopped answering; raise CommandTimeout, or leave it at its default (no limit) and bound the call with its CancellationToken",
        _ => cause.Message,
    };
}
