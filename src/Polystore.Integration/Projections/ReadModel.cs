namespace Polystore.Integration.Projections;

/// <summary>A stored read-model document with the aggregate version it reflects.</summary>
/// <typeparam name="T">The document type.</typeparam>
/// <param name="Id">The aggregate id.</param>
/// <param name="Version">The aggregate version the document reflects.</param>
/// <param name="Document">The document.</param>
public sealed record ReadModel<T>(string Id, long Version, T Document);
