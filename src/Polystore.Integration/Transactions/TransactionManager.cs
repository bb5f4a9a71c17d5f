using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using StackExchange.Redis;

namespace Polystore.Integration.Transactions;

/// <summary>
/// Runs one unit of work across PostgreSQL, other enlisted stores (MongoDB: <c>GetMongoSessionAsync</c> from
/// Polystore.Integration.Mongo) and Redis, and is honest about what that is: PostgreSQL commits first, then the
/// enlisted stores, then any queued Redis MULTI/EXEC. Nothing makes those commits
/// atomic, so a failure after PostgreSQL committed is reported as a <see cref="PartialCommitException"/>
/// naming what succeeded — never swallowed, never called a rollback. Redis work is undone by the
/// compensations you register. Prefer the outbox (<see cref="Outbox.OutboxStore"/>): one commit, then
/// reliable delivery to the other stores.
/// </summary>
/// <param name="postgres">The PostgreSQL primary.</param>
/// <param name="redis">Redis, or null when the work uses none.</param>
/// <param name="logger">Receives the failures of rollbacks and compensations, which do not surface otherwise; none when null.</param>
public sealed class TransactionManager(NpgsqlDataSource postgres, IDatabase? redis = null, ILogger? logger = null)
{
    /// <summary>
    /// Runs <paramref name="work"/> in a PostgreSQL transaction (and the transactions it enlists with
    /// <see cref="MultiStoreTransaction.EnlistAsync"/>). On success commits PostgreSQL, then the enlisted stores.
    /// On an exception from <paramref name="work"/>: rolls them all back, runs the compensations, rethrows.
    /// </summary>
    /// <exception cref="PartialCommitException">PostgreSQL committed but an enlisted store or Redis did not.</exception>
    public async Task<CommitReport> ExecuteAsync(Func<MultiStoreTransaction, Task> work, CancellationToken cancellationToken = default)
    {
        var connection = await postgres.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var pgTransaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            var transaction = new MultiStoreTransaction(connection, pgTransaction, redis, logger ?? NullLogger.Instance);
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
