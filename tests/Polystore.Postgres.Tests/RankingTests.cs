using Polystore.Postgres.Querying;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Tests;

public sealed class RankingTests(KeysetFixture db) : IClassFixture<KeysetFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Top_n_of_a_filtered_ranking_keeps_ties_and_gives_rank_dense_rank_and_percent_rank()
    {
        var ranking = Ranking.From(db.Items).Select("id", "score").OrderBy("score").Where(Filter.Equal("region", "eu")).Top(3).Build();
        var rows = await ranking.ExecuteAsync(db.Primary, r => (Id: r.GetInt64(0), Score: r.GetInt32(1)), Ct);
        // eu = even ids: scores 18, 16, ... 0 have 25 rows each (ids 20, 40, ... have score 0).
        Assert.Equal(25, rows.Count);
        Assert.All(rows, r => Assert.Equal((18, 1L, 1L, 0.0), (r.Row.Score, r.Rank, r.DenseRank, r.PercentRank)));
        var top26 = await Ranking.From(db.Items).Select("id", "score").OrderBy("score").Where(Filter.Equal("region", "eu")).Top(26).Build()
            .ExecuteAsync(db.Primary, r => r.GetInt32(1), Ct);
        Assert.Equal(50, top26.Count);
        Assert.Equal((26L, 2L), (top26[^1].Rank, top26[^1].DenseRank));
        Assert.Equal(25.0 / 249, top26[^1].PercentRank, 9);
    }

    [Fact]
    public async Task Partitions_rank_separately_and_come_ordered()
    {
        var rows = await Ranking.From(db.Items).Select("region", "id").PartitionBy("region").OrderBy("id").Top(2).Build()
            .ExecuteAsync(db.Primary, r => (Region: r.GetString(0), Id: r.GetInt64(1)), Ct);
        Assert.Equal([("eu", 500L, 1L), ("eu", 498L, 2L), ("us", 499L, 1L), ("us", 497L, 2L)], rows.Select(r => (r.Row.Region, r.Row.Id, r.Rank)));
    }

    [Fact]
    public async Task Hostile_names_are_schema_errors() =>
        await Assert.ThrowsAsync<PostgresSchemaException>(() => Ranking.From(db.Items).PartitionBy("region) x; --").OrderBy("id").Build().ExecuteAsync(db.Primary, r => 0, Ct));
}
