using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Querying;

/// <summary>
/// Starts a ranking (<c>RANK()</c>, <c>DENSE_RANK()</c>, <c>PERCENT_RANK()</c>) over any table, for example the top 10 active users by score:
/// <c>Ranking.From("users").Select("id", "name", "score").OrderBy("score", SortDirection.Descending).Where(Filter.Equal("active", true)).Top(10).Build()</c>.
/// </summary>
public static class Ranking
{
    /// <summary>Ranks the rows of <paramref name="table"/>.</summary>
    public static RankingBuilder From(string table)
    {
        return new RankingBuilder(TableSchema.CheckName(table, nameof(table)));
    }
}
