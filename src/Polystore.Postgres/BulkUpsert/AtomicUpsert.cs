using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// <see cref="PostgresBulkUpsertMode.Atomic"/>: the whole sequence in one transaction on one connection, all rows or none.
/// When the connection is lost during the COMMIT, the server is asked how it ended: committed is a success.
/// </summary>
/// <remarks>
/// A cached plan is not checked in a round trip of its own: its check rides in the transaction's first batch, and
/// when it fails (nothing written, only the rows of that batch read) the transaction is rolled back, the catalog
/// read again, and the call starts over once with those rows replayed. A transaction that loses a lock conflict
/// (deadlock or serialization failure) runs again, up to <see cref="LockConflict.MaxAttempts"/> attempts in all, when
/// its rows can be read again: a collection in memory always, a stream of up to
/// <see cref="PostgresBulkUpsertOptions.UnnestThreshold"/> rows.
/// </remarks>
internal static class AtomicUpsert<T>
{
    public static async Task<(long Received, long Inserted, long Updated, int Commits)> RunAsync(PostgresBulkUpsertDefinition<T> definition, NpgsqlDataSource dataSource,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, UpsertProgress progress, CancellationToken cancellationToken)
    {
        definition.StartKeyProof(rows, options);
        var retryable = new RetryableRows<T>(rows, options.UnnestThreshold, cancellationToken);
        await using var _ = retryable.ConfigureAwait(false);
        var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var plan = await UpsertFailure.PlanAsync(UpsertPlanResolver.ResolveAsync(definition, connection, null, checkLater: true, cancellationToken),
                PostgresBulkUpsertMode.Atomic, definition.TableName, progress, options, cancellationToken).ConfigureAwait(false);
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var trip = new UpsertFirstTrip(plan.CheckFirst ? plan.Info : null, wantTransactionId: true);
                    var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                    await using (transaction.ConfigureAwait(false))
                    {
                        var batch = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, retryable.Rows, options, long.MaxValue, trip, cancellationToken).ConfigureAwait(false);
                        await UpsertCommit.CommitAsync(connection, transaction, progress, batch, options, trip.TransactionId, cancellationToken).ConfigureAwait(false);
                        return (batch.Received, batch.Inserted, batch.Updated, 1);
                    }
                }
                catch (UpsertStalePlanException<T> stale)
                {
                    // Rolled back as the transaction was disposed; a plan read afresh is never stale, so this happens once.
                    UpsertTableCache.Forget(plan.Info.Key);
                    plan = await UpsertFailure.PlanAsync(UpsertPlanResolver.ReloadAsync(definition, connection, null, cancellationToken),
                        PostgresBulkUpsertMode.Atomic, plan.Table.DisplayName, progress, options, cancellationToken).ConfigureAwait(false);
                    retryable.Rows = stale.Replay(retryable.Rows);
                }
                catch (Exception e) when (retryable.MayRetry(e, attempt))
                {
                    // Rolled back whole as the transaction was disposed: nothing of it stays, so it simply runs again.
                    await retryable.RewindAsync(e, attempt, options, plan.Table.DisplayName).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    UpsertTableCache.ForgetOnSchemaError(plan.Info.Key, e);
                    if (e is CommitInDoubtException)
                    {
                        await UpsertCommit.SettleAsync(dataSource, progress, options.Logger).ConfigureAwait(false);
                        if (progress.Commits == 1) return (progress.RowsCommitted, progress.Inserted, progress.Updated, 1);
                    }
                    throw UpsertFailure.Create(PostgresBulkUpsertMode.Atomic, plan.Table.DisplayName, progress, e, options, cancellationToken);
                }
            }
        }
    }
}
