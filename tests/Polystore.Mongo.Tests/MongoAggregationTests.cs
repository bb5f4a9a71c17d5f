using MongoDB.Bson;

namespace Polystore.Mongo.Tests;

/// <summary>What <see cref="MongoAggregation{TOutput}"/> accepts before anything is sent.</summary>
public sealed class MongoAggregationTests
{
    private static BsonDocument Stage(string json) => BsonDocument.Parse(json);

    [Fact]
    public void Stages_are_copied_so_later_changes_to_the_callers_documents_send_nothing_new()
    {
        var match = Stage("""{ "$match": { "status": "active" } }""");
        var aggregation = new MongoAggregation<BsonDocument>("users", [match]);
        match["$match"]["status"] = "changed";
        Assert.Equal(Stage("""{ "$match": { "status": "active" } }"""), Assert.Single(aggregation.Render()));
        Assert.False(aggregation.WritesToCollection);
    }

    [Theory]
    [InlineData("""{ "$match": {}, "$sort": { "a": 1 } }""", "a stage is one $operator")]
    [InlineData("""{ "match": {} }""", "a stage is one $operator")]
    public void A_malformed_stage_is_refused_with_its_position(string stage, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => new MongoAggregation<BsonDocument>("users", [Stage("""{ "$match": {} }"""), Stage(stage)]));
        Assert.Contains($"stage 1: {message}", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{ "$merge": "view" }""")]
    [InlineData("""{ "$out": "view" }""")]
    public void A_stage_that_writes_a_collection_must_come_last(string stage)
    {
        var e = Assert.Throws<ArgumentException>(() => new MongoAggregation<BsonDocument>("users", [Stage(stage), Stage("""{ "$match": {} }""")]));
        Assert.Contains("must be the last stage", e.Message, StringComparison.Ordinal);
        Assert.True(new MongoAggregation<BsonDocument>("users", [Stage("""{ "$match": {} }"""), Stage(stage)]).WritesToCollection);
    }

    [Theory]
    [InlineData("""{ "$lookup": { "from": "system.users", "localField": "a", "foreignField": "b", "as": "c" } }""", "stage 0: $lookup.from")]
    [InlineData("""{ "$merge": { "into": "bad$name" } }""", "stage 0: $merge.into")]
    [InlineData("""{ "$out": "" }""", "stage 0: $out")]
    public void Collections_named_by_stages_are_checked(string stage, string where)
    {
        var e = Assert.Throws<ArgumentException>(() => new MongoAggregation<BsonDocument>("users", [Stage(stage)]));
        Assert.Contains(where, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_pipeline_and_a_non_positive_time_limit_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new MongoAggregation<BsonDocument>("users", []));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MongoAggregation<BsonDocument>("users", [Stage("""{ "$match": {} }""")], new() { MaxTime = TimeSpan.Zero }));
    }
}
