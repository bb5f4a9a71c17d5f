using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// <see cref="PostgresBulkUpsertMode.Atomic"/>: the whole sequence in one transaction on one connection, all rows or none.
/// When the connection is lost during the COMMIT, the server is asked how it ended: committed is a success.
/// </summary>
/// <remarks>
/// A cached plan is not checked in a round trip of its own: its check rides in the transaction's first batch, and
/// when it fails (nothing written, only the rows of that batch read) the transaction is rolled back, the catalog
/// read again, and the call starts over once with those rows replayed.
/// </remarks>
internal static class AtomicUpsert<T>
{
    public static async Task<(long Received, long Inserted, long Updated, int Commits)> RunAsync(PostgresBulkUpsertDefinition<T> definition, NpgsqlDataSource dataSource,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, UpsertProgress progress, CancellationToken cancellationToken)
    {
        definition.StartKeyProof(rows, options);
        var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var plan = await UpsertPlanResolver.ResolveAsync(definition, connection, null, checkLater: true, cancellationToken).ConfigureAwait(false);
            while (true)
            {
                try
                {
                    var trip = new UpsertFirstTrip(plan.CheckFirst ? plan.Info : null, wantTransactionId: true);
                    var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                    await using (transaction.ConfigureAwait(false))
                    {
                        var batch = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, rows, options, long.MaxValue, trip, cancellationToken).ConfigureAwait(false);
                        await UpsertCommit.CommitAsync(connection, transaction, progress, batch, options, trip.TransactionId, cancellationToken).ConfigureAwait(false);
                        return (batch.Received, batch.Inserted, batch.Updated, 1);
                    }
                }
                catch (UpsertStalePlanException<T> stale)
                {
                    // Rolled back as the transaction was disposed; a plan read afresh is never stale, so this happens once.
                    UpsertTableCache.Forget(plan.Info.Key);
                    plan = await UpsertPlanResolver.ReloadAsync(definition, connection, null, cancellationToken).ConfigureAwait(false);
                    rows = stale.Replay(rows);
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
