using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// <see cref="PostgresBulkUpsertMode.Chunked"/>: one transaction per <see cref="PostgresBulkUpsertOptions.ChunkSize"/>
/// rows on one connection; a failure keeps the chunks committed before it, and says how many rows they hold. A chunk
/// whose transaction loses a lock conflict runs again, as in <see cref="AtomicUpsert{T}"/>, when its rows can be read
/// again: from a collection in memory always, from a stream when the chunk holds up to
/// <see cref="PostgresBulkUpsertOptions.UnnestThreshold"/> rows.
/// </summary>
internal static class ChunkedUpsert<T>
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
            var plan = await UpsertFailure.PlanAsync(UpsertPlanResolver.ResolveAsync(definition, connection, null, cancellationToken),
                PostgresBulkUpsertMode.Chunked, definition.TableName, progress, options, cancellationToken).ConfigureAwait(false);
            try
            {
                var attempt = 1; // of the current chunk
                while (true)
                {
                    try
                    {
                        var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                        await using (transaction.ConfigureAwait(false))
                        {
                            var trip = new UpsertFirstTrip(null, wantTransactionId: true);
                            var batch = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, retryable.Rows, options, options.ChunkSize, trip, cancellationToken).ConfigureAwait(false);
                            if (batch.Received == 0) break;
                            await UpsertCommit.CommitAsync(connection, transaction, progress, batch, options, trip.TransactionId, cancellationToken).ConfigureAwait(false);
                            retryable.Committed(batch.Received);
                            attempt = 1;
                            if (batch.Received < options.ChunkSize) break;
                        }
                    }
                    catch (Exception e) when (retryable.MayRetry(e, attempt))
                    {
                        // Rolled back whole as the transaction was disposed: the chunk simply runs again.
                        await retryable.RewindAsync(e, attempt, options, plan.Table.DisplayName).ConfigureAwait(false);
                        attempt++;
                    }
                }
            }
            catch (Exception e)
            {
                UpsertTableCache.ForgetOnSchemaError(plan.Info.Key, e);
                throw await UpsertFailure.CreateAsync(dataSource, PostgresBulkUpsertMode.Chunked, plan.Table.DisplayName, progress, e, options, cancellationToken).ConfigureAwait(false);
            }
            return (progress.RowsCommitted, progress.Inserted, progress.Updated, progress.Commits);
        }
    }
}
