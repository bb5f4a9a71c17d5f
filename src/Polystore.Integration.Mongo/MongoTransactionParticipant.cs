using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Integration.Transactions;

namespace Polystore.Integration.Mongo;

/// <summary>A MongoDB session with a started transaction, committed after PostgreSQL's.</summary>
internal sealed class MongoTransactionParticipant(IClientSessionHandle session) : ITransactionParticipant
{
    public IClientSessionHandle Session { get; } = session;

    public string Store => StoreNames.Mongo;

    public Task CommitAsync(CancellationToken cancellationToken) => Session.CommitTransactionAsync(cancellationToken);

    public Task AbortAsync() => Session.IsInTransaction ? Session.AbortTransactionAsync() : Task.CompletedTask;

    public bool IsStoreFailure(Exception exception) => exception is MongoException;

    public void Dispose() => Session.Dispose();
}
