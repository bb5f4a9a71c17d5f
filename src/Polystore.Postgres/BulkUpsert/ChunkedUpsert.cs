using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// <see cref="PostgresBulkUpsertMode.Chunked"/>: one transaction per <see cref="PostgresBulkUpsertOptions.ChunkSize"/>
/// rows on one connection; a failure keeps the chunks committed before it, and says how many rows they hold.
/// </summary>
internal static class ChunkedUpsert<T>
{
    public static async Task<(long Received, long Inserted, long Updated, int Commits)> RunAsync(PostgresBulkUpsertDefinition<T> definition, NpgsqlDataSource dataSource,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, UpsertProgress progress, CancellationToken cancellationToken)
    {
        definition.StartKeyProof(rows, options);
        var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var plan = await UpsertPlanResolver.ResolveAsync(definition, connection, null, cancellationToken).ConfigureAwait(false);
            try
            {
                while (true)
                {
                    var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                    await using (transaction.ConfigureAwait(false))
                    {
                        var trip = new UpsertFirstTrip(null, wantTransactionId: true);
                        var batch = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, rows, options, options.ChunkSize, trip, cancellationToken).ConfigureAwait(false);
                        if (batch.Received == 0) break;
                        await UpsertCommit.CommitAsync(connection, transaction, progress, batch, options, trip.TransactionId, cancellationToken).ConfigureAwait(false);
                        if (batch.Received < options.ChunkSize) break;
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
