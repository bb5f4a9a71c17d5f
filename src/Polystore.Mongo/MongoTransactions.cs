using MongoDB.Driver;

namespace Polystore.Mongo;

/// <summary>Thrown when transactions are asked of a deployment that cannot run them (a standalone mongod).</summary>
public sealed class MongoTransactionsNotSupportedException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public MongoTransactionsNotSupportedException(string message) : base(message) { }
}

/// <summary>Sessions with multi-document transactions, refused clearly where the server cannot run them.</summary>
public static class MongoTransactions
{
    /// <summary>
    /// The defaults: snapshot reads, majority writes, primary reads (the manual's advice for transactions
    /// that must see and make durable, consistent data).
    /// </summary>
    public static TransactionOptions DefaultOptions { get; } = new(ReadConcern.Snapshot, ReadPreference.Primary, WriteConcern.WMajority);

    /// <summary>
    /// Runs <paramref name="body"/> in a transaction with the driver's <c>WithTransactionAsync</c> (which retries
    /// on TransientTransactionError and UnknownTransactionCommitResult, so <paramref name="body"/> must be safe to run again).
    /// Throws <see cref="MongoTransactionsNotSupportedException"/> before starting on a standalone server.
    /// </summary>
    public static async Task<T> RunAsync<T>(MongoStore store, Func<IClientSessionHandle, CancellationToken, Task<T>> body,
        TransactionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(body);
        await EnsureSupportedAsync(store, cancellationToken).ConfigureAwait(false);
        using var session = await store.Client.StartSessionAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        return await session.WithTransactionAsync(body, options ?? DefaultOptions, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Throws <see cref="MongoTransactionsNotSupportedException"/> unless the server is a replica set member or a mongos.</summary>
    public static async Task EnsureSupportedAsync(MongoStore store, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var kind = await MongoTopology.DetectAsync(store.Client, cancellationToken).ConfigureAwait(false);
        if (kind == MongoTopologyKind.Standalone) throw NotSupported(MongoTopology.Endpoint(store.Client));
    }

    internal static MongoTransactionsNotSupportedException NotSupported(string endpoint) => new(
        $"MongoDB transactions need a replica set or a sharded cluster, but the server at {endpoint} is a standalone mongod " +
        "(its hello reply has no setName and is not a mongos). Run it as a replica set (even one member: mongod --replSet rs0, then rs.initiate()) " +
        "and set replication.replica_set in mongodb.yaml.");
}
