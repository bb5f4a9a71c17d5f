namespace Polystore.Postgres.Querying;

/// <summary>One page of a keyset query.</summary>
/// <typeparam name="T">The mapped row type.</typeparam>
/// <param name="Items">The rows, in the query's order (also for pages fetched backwards).</param>
/// <param name="NextCursor">Pass back to fetch the rows after this page; null when there are none.</param>
/// <param name="PreviousCursor">Pass back to fetch the rows before this page; null on the first page.</param>
public sealed record KeysetPage<T>(IReadOnlyList<T> Items, string? NextCursor, string? PreviousCursor);
