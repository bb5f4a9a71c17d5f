namespace Polystore.Postgres.Querying;

/// <summary>Sort direction of one key.</summary>
public enum SortDirection
{
    /// <summary>Smallest first.</summary>
    Ascending,

    /// <summary>Largest first.</summary>
    Descending,
}
