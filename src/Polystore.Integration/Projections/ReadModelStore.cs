namespace Polystore.Integration.Projections;

internal static partial class FieldName
{
    public static string Check(string field) =>
        Plain().IsMatch(field) ? field : throw new ArgumentException($"'{field}' is not a plain field name (letters, digits and _, starting with a letter or _)", nameof(field));

    [System.Text.RegularExpressions.GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    private static partial System.Text.RegularExpressions.Regex Plain();
}

/// <summary>A stored read-model document with the aggregate version it reflects.</summary>
/// <typeparam name="T">The document type.</typeparam>
/// <param name="Id">The aggregate id.</param>
/// <param name="Version">The aggregate version the document reflects.</param>
/// <param name="Document">The document.</param>
public sealed record ReadModel<T>(string Id, long Version, T Document);

/// <summary>
/// Where a projection keeps its documents. Writes are version-guarded: a document is replaced only by
/// a strictly newer version, so a duplicate or out-of-date event never overwrites newer state.
/// </summary>
/// <typeparam name="T">The document type (serialized with System.Text.Json).</typeparam>
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
    /// <param name="context">The dispatcher's batch, when called from a subscriber: a PostgreSQL store writes inside its transaction (exactly once).</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    Task<bool> UpsertIfNewerAsync(string id, long version, T document, Outbox.OutboxContext? context, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores each document unless a version at least as new is stored, in one round trip where the
    /// backend allows. Several versions of one id in <paramref name="documents"/> are allowed; the newest wins.
    /// </summary>
    async Task UpsertManyIfNewerAsync(IReadOnlyList<ReadModel<T>> documents, Outbox.OutboxContext? context, CancellationToken cancellationToken = default)
    {
        foreach (var d in documents) await UpsertIfNewerAsync(d.Id, d.Version, d.Document, context, cancellationToken).ConfigureAwait(false);
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
