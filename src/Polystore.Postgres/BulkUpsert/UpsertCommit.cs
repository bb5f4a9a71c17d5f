using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore.Core;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Commits one transaction of a bulk upsert so that the caller always knows whether it committed: the transaction
/// id is read first, the COMMIT is never cancelled halfway, and when the connection is lost during it the server is
/// asked afterwards (<c>pg_xact_status</c>) on a fresh connection.
/// </summary>
internal static class UpsertCommit
{
    // How long settling an in-doubt COMMIT may wait for the server before it is reported as in doubt.
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan StatusPollInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>Commits and records the batch in <paramref name="progress"/>; throws <see cref="CommitInDoubtException"/> (after recording it) when the outcome is unknown.</summary>
    public static async Task CommitAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, UpsertProgress progress,
        (long Rows, long Inserted, long Updated, UpsertTechniques Technique) batch, PostgresBulkUpsertOptions options, string? transactionId, CancellationToken cancellationToken)
    {
        // Usually read already, in the batch that applied the rows; asked here only when no batch could carry it.
        if (transactionId is null)
        {
            var id = new NpgsqlCommand(CurrentTransactionId(connection), connection, transaction) { CommandTimeout = options.CommandTimeoutSeconds };
            await using (id.ConfigureAwait(false))
                transactionId = (string)(await id.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
        try
        {
            // Not cancellable: a COMMIT cut off by a cancellation would leave the outcome unknown.
            await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        // An ERROR from the server means it rolled back; anything else (a lost connection, a FATAL message as the
        // server shuts down) can come after the commit record was written.
        catch (Exception e) when (e is not PostgresException { InvariantSeverity: "ERROR" })
        {
            var commit = new InDoubtCommit(transactionId, batch.Rows, batch.Inserted, batch.Updated, batch.Technique);
            options.Logger.BulkUpsertCommitInDoubt(Redactor.Redact(e), transactionId, batch.Rows);
            progress.AddInDoubt(commit);
            throw new CommitInDoubtException(commit, e);
        }
        progress.Committed(batch.Rows, batch.Inserted, batch.Updated, batch.Technique);
    }

    /// <summary>
    /// Asks the server, on a fresh connection, how each in-doubt COMMIT ended: committed ones join the committed
    /// counts, aborted ones are dropped, the rest stay in doubt (the server is down or does not know).
    /// </summary>
    public static async Task SettleAsync(NpgsqlDataSource dataSource, UpsertProgress progress, ILogger logger)
    {
        var pending = progress.TakeInDoubt();
        if (pending.Count == 0) return;
        Dictionary<string, string?> status = [];
        try
        {
            using var timeout = new CancellationTokenSource(SettleTimeout);
            var connection = await dataSource.OpenConnectionAsync(timeout.Token).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                foreach (var commit in pending)
                {
                    // "in progress" while the old backend is still finishing (a killed one aborts as it exits): ask again.
                    string? state;
                    while ((state = await StatusAsync(connection, commit.TransactionId, timeout.Token).ConfigureAwait(false)) == "in progress")
                        await Task.Delay(StatusPollInterval, timeout.Token).ConfigureAwait(false);
                    status[commit.TransactionId] = state;
                }
            }
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or OperationCanceledException or InvalidOperationException or IOException or System.Net.Sockets.SocketException)
        {
            // The server cannot be asked: whatever was not settled stays in doubt.
        }
        foreach (var commit in pending)
        {
            switch (status.GetValueOrDefault(commit.TransactionId))
            {
                case "committed":
                    logger.BulkUpsertCommitSettled(commit.TransactionId, commit.Rows, "committed");
                    progress.Committed(commit.Rows, commit.Inserted, commit.Updated, commit.Technique);
                    break;
                case "aborted":
                    logger.BulkUpsertCommitSettled(commit.TransactionId, commit.Rows, "aborted");
                    break;
                default:
                    logger.BulkUpsertCommitUnsettled(commit.TransactionId, commit.Rows, StatusQuery(commit));
                    progress.AddInDoubt(commit);
                    break;
            }
        }
    }

    private static async Task<string?> StatusAsync(NpgsqlConnection connection, string transactionId, CancellationToken cancellationToken)
    {
        var command = new NpgsqlCommand(TransactionStatus(connection), connection) { Parameters = { new() { Value = transactionId } } };
        await using (command.ConfigureAwait(false))
            return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    /// <summary>The query a DBA runs once the server is back, for the messages.</summary>
    public static string StatusQuery(InDoubtCommit commit) => $"SELECT pg_xact_status('{commit.TransactionId}')";

    // pg_current_xact_id and pg_xact_status (xid8) exist from PostgreSQL 13; txid_current and txid_status before.
    public static string CurrentTransactionId(NpgsqlConnection connection) => connection.PostgreSqlVersion.Major >= 13
        ? "SELECT pg_catalog.pg_current_xact_id()::text" : "SELECT pg_catalog.txid_current()::text";

    private static string TransactionStatus(NpgsqlConnection connection) => connection.PostgreSqlVersion.Major >= 13
        ? "SELECT pg_catalog.pg_xact_status($1::text::xid8)" : "SELECT pg_catalog.txid_status($1::text::bigint)";
}
