using MongoDB.Bson;
using Polystore.Mongo;

namespace Polystore.Samples.Users;

/// <summary>
/// The user analytics on MongoDB: <c>$match</c> status, <c>$lookup</c> orders, <c>$addFields</c>
/// order_count/total_spent, <c>$group</c> by region, then <c>$sort</c> by revenue, or <c>$merge</c> into a view.
/// </summary>
public static class UserAnalyticsPipeline
{
    /// <summary>Builds the aggregation for <paramref name="options"/> (defaults: <c>users</c> joined with <c>orders</c>, status <c>active</c>).</summary>
    /// <exception cref="ArgumentException">A collection name is invalid; the message names the stage.</exception>
    public static MongoAggregation<UserRegionStats> Create(UserAnalyticsOptions? options = null)
    {
        var o = options ?? new UserAnalyticsOptions();
        ArgumentNullException.ThrowIfNull(o.Status, nameof(UserAnalyticsOptions.Status));
        return new MongoAggregation<UserRegionStats>(o.UsersCollection, Stages(o), new MongoAggregationOptions { AllowDiskUse = o.AllowDiskUse, MaxTime = o.MaxTime });
    }

    private static List<BsonDocument> Stages(UserAnalyticsOptions o)
    {
        var stages = new List<BsonDocument> { new("$match", new BsonDocument("status", o.Status)) };
        var lookup = new BsonDocument
        {
            { "from", o.OrdersCollection },
            { "localField", "_id" },
            { "foreignField", "user_id" },
        };
        if (o.ProjectEarly)
        {
            // Only what later stages read: _id joins the orders, region groups, amount sums.
            stages.Add(new("$project", new BsonDocument { { "_id", 1 }, { "region", 1 } }));
            lookup.Add("pipeline", new BsonArray { new BsonDocument("$project", new BsonDocument { { "_id", 0 }, { "amount", 1 } }) });
        }
        lookup.Add("as", "orders");
        stages.Add(new("$lookup", lookup));
        stages.Add(new("$addFields", new BsonDocument
        {
            { "order_count", new BsonDocument("$size", "$orders") },
            { "total_spent", new BsonDocument("$sum", "$orders.amount") },
        }));
        stages.Add(new("$group", new BsonDocument
        {
            { "_id", "$region" },
            { "user_count", new BsonDocument("$sum", 1) },
            { "avg_orders", new BsonDocument("$avg", "$order_count") },
            { "total_revenue", new BsonDocument("$sum", "$total_spent") },
        }));
        if (o.MergeInto is { } view)
        {
            // A view has no order: sorting before $merge would be wasted work.
            stages.Add(new("$merge", new BsonDocument
            {
                { "into", view },
                { "on", "_id" },
                { "whenMatched", "replace" },
                { "whenNotMatched", "insert" },
            }));
        }
        else
        {
            stages.Add(new("$sort", new BsonDocument("total_revenue", -1)));
        }
        return stages;
    }
}
