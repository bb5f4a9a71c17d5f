namespace Polystore.Postgres.Querying;

/// <summary>A row with its place in a ranking.</summary>
/// <typeparam name="T">The mapped row type.</typeparam>
/// <param name="Row">The row.</param>
/// <param name="Rank"><c>RANK()</c>: ties share a rank, and the next rank skips (1, 1, 3).</param>
/// <param name="DenseRank"><c>DENSE_RANK()</c>: ties share a rank, no gaps (1, 1, 2).</param>
/// <param name="PercentRank"><c>PERCENT_RANK()</c>: (rank - 1) / (rows in partition - 1), 0 for the top.</param>
public sealed record Ranked<T>(T Row, long Rank, long DenseRank, double PercentRank);
