using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary><see cref="PostgresBulkUpsertMode.Atomic"/>: the whole sequence in one transaction on one connection, all rows or none.</summary>
internal static class AtomicUpsert<T>
{
    public static async Task<(long Received, long Inserted, long Updated, int Commits)> RunAsync(PostgresBulkUpsertDefinition<T> definition, NpgsqlDataSource dataSource,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, CancellationToken cancellationToken)
    {
        var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                var plan = await UpsertPlanResolver.ResolveAsync(definition, connection, transaction, cancellationToken).ConfigureAwait(false);
                try
                {
                    var (received, inserted, updated) = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, rows, options, long.MaxValue, cancellationToken).ConfigureAwait(false);
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    return (received, inserted, updated, 1);
                }
                catch (PostgresException e)
                {
                    throw new PostgresBulkUpsertException($"bulk upsert into {plan.Table.DisplayName} failed; nothing was written (the transaction was rolled back): {e.MessageText}", 0, e);
                }
            }
        }
    }
}
