using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Integration.Transactions;

namespace Polystore.Integration.Mongo;

/// <summary>MongoDB inside a <see cref="TransactionManager"/> unit of work.</summary>
public static class MongoMultiStoreTransactionExtensions
{
    /// <summary>
    /// The unit's MongoDB session with a started transaction (replica set or mongos only), started on first call and
    /// committed after PostgreSQL; a MongoDB commit failure after PostgreSQL committed is a <see cref="PartialCommitException"/>.
    /// </summary>
    public static async Task<IClientSessionHandle> GetMongoSessionAsync(this MultiStoreTransaction transaction, IMongoClient mongo, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(mongo);
        var participant = await transaction.EnlistAsync(StoreNames.Mongo, async ct =>
        {
            var session = await mongo.StartSessionAsync(cancellationToken: ct).ConfigureAwait(false);
            session.StartTransaction();
            return new MongoTransactionParticipant(session);
        }, cancellationToken).ConfigureAwait(false);
        return participant.Session;
    }
}
