using MongoDB.Driver;
using Npgsql;
using Polystore.Core;
using StackExchange.Redis;

namespace Polystore.Integration.Transactions;

/// <summary>
/// The seed's TransactionManager, kept for callers who want its shape, and honest about what it is:
/// PostgreSQL commits first, then MongoDB, then any queued Redis MULTI/EXEC. Nothing makes those two commits atomic, so a MongoDB
/// failure after PostgreSQL committed is reported as a <see cref="PartialCommitException"/> naming
/// what succeeded — never swallowed, never called a rollback. Redis work is undone by the
/// compensations you register. Prefer the outbox (<see cref="Outbox.OutboxStore"/>): one commit, then
/// reliable delivery to the other stores.
/// </summary>
public sealed class TransactionManager(NpgsqlDataSource postgres, IMongoClient? mongo = null, IDatabase? redis = null)
{
    /// <summary>
    /// Runs <paramref name="work"/> in a PostgreSQL transaction (and a MongoDB transaction, started on
    /// first use of <see cref="MultiStoreTransaction.GetMongoSessionAsync"/>). On success commits
    /// PostgreSQL, then MongoDB. On an exception from <paramref name="work"/>: rolls both back, runs the
    /// compensations, rethrows.
    /// </summary>
    /// <exception cref="PartialCommitException">PostgreSQL committed but MongoDB or Redis did not.</exception>
    public async Task<CommitReport> ExecuteAsync(Func<MultiStoreTransaction, Task> work, CancellationToken cancellationToken = default)
    {
        var connection = await postgres.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var pgTransaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var transaction = new MultiStoreTransaction(connection, pgTransaction, mongo, redis);
            await using (transaction.ConfigureAwait(false))
            {
                try
                {
                    await work(transaction).ConfigureAwait(false);
                }
                catch
                {
                    await transaction.RollbackAsync().ConfigureAwait(false);
                    throw;
                }
                return await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
