using Npgsql;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// <see cref="PostgresBulkUpsertMode.Chunked"/>: one transaction per <see cref="PostgresBulkUpsertOptions.ChunkSize"/>
/// rows on one connection; a failure keeps the chunks committed before it.
/// </summary>
internal static class ChunkedUpsert<T>
{
    public static async Task<(long Received, long Inserted, long Updated, int Commits)> RunAsync(PostgresBulkUpsertDefinition<T> definition, NpgsqlDataSource dataSource,
        IAsyncEnumerator<T> rows, PostgresBulkUpsertOptions options, CancellationToken cancellationToken)
    {
        var connection = await PostgresPool.OpenAsync(dataSource, cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            long received = 0, inserted = 0, updated = 0;
            var commits = 0;
            PostgresBulkUpsertPlan<T>? plan = null;
            while (true)
            {
                var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    plan ??= await UpsertPlanResolver.ResolveAsync(definition, connection, transaction, cancellationToken).ConfigureAwait(false);
                    try
                    {
                        var (r, i, u) = await TransactionUpsert<T>.RunAsync(connection, transaction, plan, rows, options, options.ChunkSize, cancellationToken).ConfigureAwait(false);
                        if (r == 0) break;
                        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                        (received, inserted, updated, commits) = (received + r, inserted + i, updated + u, commits + 1);
                        if (r < options.ChunkSize) break;
                    }
                    catch (PostgresException e)
                    {
                        throw new PostgresBulkUpsertException($"bulk upsert into {plan.Table.DisplayName} failed in chunk {commits + 1}; the {commits} chunk(s) before it ({received} rows) stay committed: {e.MessageText}", received, e);
                    }
                }
            }
            return (received, inserted, updated, commits);
        }
    }
}
