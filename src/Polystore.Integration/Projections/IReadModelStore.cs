namespace Polystore.Integration.Projections;

/// <summary>
/// Where a projection keeps its documents. Writes are version-guarded: a document is replaced only by
/// a strictly newer version, so a duplicate or out-of-date event never overwrites newer state.
/// </summary>
/// <typeparam name="T">The document type (serialized with System.Text.Json).</typeparam>
/// <remarks>
/// A store in the outbox's PostgreSQL database can also implement <see cref="IPostgresReadModelStore{T}"/>,
/// so that <see cref="ReadModelProjection{T}"/> writes it in the dispatcher's transaction.
/// </remarks>
public interface IReadModelStore<T>
{
    /// <summary>A short description for logs and reports (backend and table or collection).</summary>
    string Description { get; }

    /// <summary>Creates the table or collection if missing.</summary>
    Task EnsureCreatedAsync(CancellationToken cancellationToken = default);

    /// <summary>Stores <paramref name="document"/> unless a version at least as new is stored; true when written.</summary>
    /// <param name="id">The aggregate id.</param>
    /// <param name="version">The aggregate version the document reflects.</param>
    /// <param name="document">The document.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    Task<bool> UpsertIfNewerAsync(string id, long version, T document, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores each document unless a version at least as new is stored, in one round trip where the
    /// backend allows. Several versions of one id in <paramref name="documents"/> are allowed; the newest wins.
    /// </summary>
    async Task UpsertManyIfNewerAsync(IReadOnlyList<ReadModel<T>> documents, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(documents);
        foreach (var d in documents) await UpsertIfNewerAsync(d.Id, d.Version, d.Document, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The stored document, or null.</summary>
    Task<ReadModel<T>?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// How many documents have each value of the top-level field <paramref name="field"/> (for example
    /// users per region), most first. <paramref name="field"/> must be a plain name (letters, digits, _).
    /// </summary>
    Task<IReadOnlyList<KeyValuePair<string, long>>> CountByAsync(string field, CancellationToken cancellationToken = default);

    /// <summary>Every stored (id, version) pair, for checks against the source of truth.</summary>
    Task<IReadOnlyDictionary<string, long>> GetVersionsAsync(CancellationToken cancellationToken = default);
}
