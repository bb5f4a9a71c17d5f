namespace Polystore.Integration.Transactions;

/// <summary>
/// Another store's transaction inside a <see cref="MultiStoreTransaction"/>, committed after PostgreSQL's. MongoDB's
/// comes with Polystore.Integration.Mongo (<c>GetMongoSessionAsync</c>); this package does not depend on its driver.
/// </summary>
public interface ITransactionParticipant : IDisposable
{
    /// <summary>The store's name in commit reports (<see cref="Core.Configuration.StoreNames"/>).</summary>
    string Store { get; }

    /// <summary>Commits the store's transaction.</summary>
    Task CommitAsync(CancellationToken cancellationToken);

    /// <summary>Aborts the store's transaction if it is still open.</summary>
    Task AbortAsync();

    /// <summary>True when <paramref name="exception"/> is this store failing (down, timed out, refused), not a bug in the caller's code.</summary>
    bool IsStoreFailure(Exception exception);
}
