using Npgsql;

namespace Polystore.Integration.Projections;

/// <summary>
/// A read model in PostgreSQL that can write inside a caller's transaction. <see cref="ReadModelProjection{T}"/>
/// writes such a store in the outbox dispatcher's transaction, which also advances the subscriber's
/// checkpoint: the documents and the checkpoint commit or roll back together, so each event is applied
/// exactly once. The store's table must then live in the outbox's database.
/// </summary>
/// <typeparam name="T">The document type.</typeparam>
public interface IPostgresReadModelStore<T> : IReadModelStore<T>
{
    /// <summary>
    /// Stores each document unless a version at least as new is stored, as part of <paramref name="transaction"/>
    /// (nothing is written if it rolls back). Several versions of one id are allowed; the newest wins.
    /// </summary>
    /// <param name="documents">The documents.</param>
    /// <param name="transaction">An open transaction on the store's database.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    Task UpsertManyIfNewerAsync(IReadOnlyList<ReadModel<T>> documents, NpgsqlTransaction transaction, CancellationToken cancellationToken = default);
}
