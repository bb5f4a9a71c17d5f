using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// <see cref="PostgresBulkUpsertMode.Atomic"/>: the whole sequence in one transaction on one connection, all rows or none.
/// When the connection is lost during the COMMIT, the server is asked how it ended: committed is a success.
/// </summary>
internal static class AtomicUpsert<T>
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
                var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    var batch = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, rows, options, long.MaxValue, cancellationToken).ConfigureAwait(false);
                    await UpsertCommit.CommitAsync(connection, transaction, progress, batch, options, cancellationToken).ConfigureAwait(false);
                    return (batch.Received, batch.Inserted, batch.Updated, 1);
                }
            }
            catch (Exception e)
            {
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
