using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using Polystore.Samples.Users;
using Polystore.Testing;

namespace Polystore.Mongo.Tests;

/// <summary>The sample's user analytics, stages as the MongoDB manual spells them (aggregation reference, $lookup, $merge).</summary>
public sealed class UserAnalyticsPipelineTests
{
    private static readonly string[] DefaultStages =
    [
        """{ "$match": { "status": "active" } }""",
        """{ "$lookup": { "from": "orders", "localField": "_id", "foreignField": "user_id", "as": "orders" } }""",
        """{ "$addFields": { "order_count": { "$size": "$orders" }, "total_spent": { "$sum": "$orders.amount" } } }""",
        """{ "$group": { "_id": "$region", "user_count": { "$sum": 1 }, "avg_orders": { "$avg": "$order_count" }, "total_revenue": { "$sum": "$total_spent" } } }""",
        """{ "$sort": { "total_revenue": -1 } }""",
    ];

    private static BsonDocument[] Parse(params string[] json) => [.. json.Select(BsonDocument.Parse)];

    [Fact]
    public void Default_pipeline_renders_the_documented_stages_exactly()
    {
        var pipeline = UserAnalyticsPipeline.Create();
        Assert.Equal("users", pipeline.Collection);
        Assert.Equal(Parse(DefaultStages), pipeline.Render());
        var typed = pipeline.Pipeline.Render(new RenderArgs<BsonDocument>(BsonSerializer.LookupSerializer<BsonDocument>(), BsonSerializer.SerializerRegistry));
        Assert.Equal(Parse(DefaultStages), typed.Documents);
        Assert.IsAssignableFrom<IBsonSerializer<UserRegionStats>>(typed.OutputSerializer);
        Assert.Null(pipeline.AggregateOptions.AllowDiskUse);
        Assert.Null(pipeline.AggregateOptions.MaxTime);
    }

    [Fact]
    public void Project_early_keeps_only_needed_fields_and_uses_the_lookup_pipeline_form()
    {
        var pipeline = UserAnalyticsPipeline.Create(new() { ProjectEarly = true, Status = "trial", OrdersCollection = "orders_2026" });
        Assert.Equal(Parse(
            """{ "$match": { "status": "trial" } }""",
            """{ "$project": { "_id": 1, "region": 1 } }""",
            """{ "$lookup": { "from": "orders_2026", "localField": "_id", "foreignField": "user_id", "pipeline": [ { "$project": { "_id": 0, "amount": 1 } } ], "as": "orders" } }""",
            DefaultStages[2], DefaultStages[3], DefaultStages[4]), pipeline.Render());
    }

    [Fact]
    public void Merge_replaces_the_sort_with_a_merge_into_the_view()
    {
        var pipeline = UserAnalyticsPipeline.Create(new() { MergeInto = "user_region_stats", AllowDiskUse = true, MaxTime = TimeSpan.FromSeconds(30) });
        Assert.Equal(Parse(
            DefaultStages[0], DefaultStages[1], DefaultStages[2], DefaultStages[3],
            """{ "$merge": { "into": "user_region_stats", "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert" } }"""), pipeline.Render());
        Assert.True(pipeline.WritesToCollection);
        Assert.True(pipeline.AggregateOptions.AllowDiskUse);
        Assert.Equal(TimeSpan.FromSeconds(30), pipeline.AggregateOptions.MaxTime);
        Assert.Throws<InvalidOperationException>(() => pipeline.Pipeline);
    }

    [Theory]
    [InlineData("UsersCollection", "", "collection")]
    [InlineData("OrdersCollection", "or$ders", "$lookup.from")]
    [InlineData("MergeInto", "system.views", "$merge.into")]
    public void Bad_collection_names_are_rejected_naming_where_they_are_used(string option, string value, string where)
    {
        var options = option switch
        {
            "UsersCollection" => new UserAnalyticsOptions { UsersCollection = value },
            "OrdersCollection" => new UserAnalyticsOptions { OrdersCollection = value },
            _ => new UserAnalyticsOptions { MergeInto = value },
        };
        var e = Assert.Throws<ArgumentException>(() => UserAnalyticsPipeline.Create(options));
        Assert.Contains(where, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Group_output_deserializes_into_typed_records()
    {
        // Shapes the server returns from $group: int or double sums, Decimal128 amounts, a null region.
        var rows = Parse(
            """{ "_id": "eu", "user_count": 2, "avg_orders": 1.5, "total_revenue": { "$numberDecimal": "100.25" } }""",
            """{ "_id": null, "user_count": 1, "avg_orders": 0.0, "total_revenue": 0 }""",
            """{ "_id": "us", "user_count": 3, "avg_orders": 2.0, "total_revenue": 12.5 }""");
        var typed = rows.Select(r => BsonSerializer.Deserialize<UserRegionStats>(r)).ToArray();
        Assert.Equal(new UserRegionStats("eu", 2, 1.5, 100.25m), typed[0]);
        Assert.Equal(new UserRegionStats(null, 1, 0, 0m), typed[1]);
        Assert.Equal(new UserRegionStats("us", 3, 2.0, 12.5m), typed[2]);
    }
}

public sealed class UserAnalyticsServerTests
{
    [Fact]
    public async Task Pipeline_and_merge_compute_the_region_figures()
    {
        if (TestServers.Mongo is not { } mongo)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        var ct = TestContext.Current.CancellationToken;
        using var store = MongoStore.Create(mongo);
        var prefix = TestServers.UniqueName("ua");
        var users = store.Collection(prefix + "_users");
        var orders = store.Collection(prefix + "_orders");
        try
        {
            await users.InsertManyAsync(Parse(
                """{ "_id": 1, "status": "active", "region": "eu" }""",
                """{ "_id": 2, "status": "active", "region": "eu" }""",
                """{ "_id": 3, "status": "active", "region": "us" }""",
                """{ "_id": 4, "status": "banned", "region": "us" }"""), cancellationToken: ct);
            await orders.InsertManyAsync(Parse(
                """{ "user_id": 1, "amount": 10 }""", """{ "user_id": 1, "amount": 5.5 }""",
                """{ "user_id": 3, "amount": 100 }""", """{ "user_id": 4, "amount": 1000 }"""), cancellationToken: ct);
            foreach (var early in new[] { false, true })
            {
                var rows = await UserAnalyticsPipeline.Create(new() { UsersCollection = users.CollectionNamespace.CollectionName, OrdersCollection = orders.CollectionNamespace.CollectionName, ProjectEarly = early, AllowDiskUse = true })
                    .RunAsync(store.Database, ct);
                Assert.Equal([new UserRegionStats("us", 1, 1, 100m), new UserRegionStats("eu", 2, 1, 15.5m)], rows);
            }
            var view = prefix + "_view";
            await UserAnalyticsPipeline.Create(new() { UsersCollection = users.CollectionNamespace.CollectionName, OrdersCollection = orders.CollectionNamespace.CollectionName, MergeInto = view })
                .RunToCollectionAsync(store.Database, ct);
            var merged = await store.Database.GetCollection<UserRegionStats>(view).Find(FilterDefinition<UserRegionStats>.Empty).SortBy(r => r.Region).ToListAsync(ct);
            Assert.Equal([new UserRegionStats("eu", 2, 1, 15.5m), new UserRegionStats("us", 1, 1, 100m)], merged);
        }
        finally
        {
            foreach (var name in new[] { "_users", "_orders", "_view" }) await store.Database.DropCollectionAsync(prefix + name, CancellationToken.None);
        }
    }

    private static BsonDocument[] Parse(params string[] json) => [.. json.Select(BsonDocument.Parse)];
}
