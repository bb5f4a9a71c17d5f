using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Bson.Serialization.Attributes;
using MongoDB.Bson.Serialization.Serializers;
using MongoDB.Driver;

namespace Polystore.Mongo;

/// <summary>One row of the user analytics: users, orders and revenue of a region.</summary>
/// <param name="Region">The region (<c>_id</c> of the group); null for users without one.</param>
/// <param name="UserCount">Users with the matched status in the region.</param>
/// <param name="AvgOrders">Average number of orders per such user.</param>
/// <param name="TotalRevenue">Sum of the <c>amount</c> of their orders.</param>
public sealed record UserRegionStats(
    [property: BsonId] string? Region,
    [property: BsonElement("user_count")] int UserCount,
    [property: BsonElement("avg_orders")] double AvgOrders,
    // Amounts may be stored as int, double or Decimal128; decimal keeps money exact where it can.
    [property: BsonElement("total_revenue"), BsonRepresentation(BsonType.Decimal128, AllowTruncation = true)] decimal TotalRevenue);

/// <summary>Options of <see cref="UserAnalyticsPipeline"/>: the seed's troubleshooting advice as switches.</summary>
public sealed record UserAnalyticsOptions
{
    /// <summary>The users collection the pipeline runs on (used by <see cref="UserAnalyticsPipeline.RunAsync"/>).</summary>
    public string UsersCollection { get; init; } = "users";
    /// <summary>The collection joined by <c>$lookup</c>.</summary>
    public string OrdersCollection { get; init; } = "orders";
    /// <summary>The value <c>status</c> must have.</summary>
    public string Status { get; init; } = "active";
    /// <summary>Let stages spill to disk past the 100 MB memory limit (<c>allowDiskUse</c>).</summary>
    public bool AllowDiskUse { get; init; }
    /// <summary>
    /// Project early: after <c>$match</c> keep only <c>_id</c> and <c>region</c>, and join orders with the
    /// <c>$lookup</c> pipeline form that returns only <c>amount</c> (MongoDB 5.0+), so no stage carries whole documents.
    /// </summary>
    public bool ProjectEarly { get; init; }
    /// <summary>When set, end with <c>$merge</c> into this collection (a materialized view) instead of returning rows.</summary>
    public string? MergeInto { get; init; }
    /// <summary>Server-side time limit; null for none.</summary>
    public TimeSpan? MaxTime { get; init; }
}

/// <summary>
/// The seed's user analytics: <c>$match</c> status, <c>$lookup</c> orders, <c>$addFields</c> order_count/total_spent,
/// <c>$group</c> by region, <c>$sort</c> by revenue, with the options in <see cref="UserAnalyticsOptions"/>.
/// </summary>
public sealed class UserAnalyticsPipeline
{
    /// <summary>Validates <paramref name="options"/> and builds the stages once.</summary>
    public UserAnalyticsPipeline(UserAnalyticsOptions? options = null)
    {
        Options = options ?? new UserAnalyticsOptions();
        MongoNames.ValidateCollection(Options.UsersCollection, nameof(UserAnalyticsOptions.UsersCollection));
        MongoNames.ValidateCollection(Options.OrdersCollection, nameof(UserAnalyticsOptions.OrdersCollection));
        if (Options.MergeInto is not null) MongoNames.ValidateCollection(Options.MergeInto, nameof(UserAnalyticsOptions.MergeInto));
        ArgumentNullException.ThrowIfNull(Options.Status, nameof(UserAnalyticsOptions.Status));
        if (Options.MaxTime is { } t && t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), t, "MaxTime must be positive");
        Stages = BuildStages(Options);
    }

    /// <summary>The options the pipeline was built with.</summary>
    public UserAnalyticsOptions Options { get; }

    /// <summary>The stages, exactly as sent.</summary>
    public IReadOnlyList<BsonDocument> Stages { get; }

    /// <summary>The pipeline typed on raw user documents in and <see cref="UserRegionStats"/> out (no <c>$merge</c>).</summary>
    public PipelineDefinition<BsonDocument, UserRegionStats> Pipeline =>
        Options.MergeInto is null
            ? new BsonDocumentStagePipelineDefinition<BsonDocument, UserRegionStats>(Stages.Select(s => s.DeepClone().AsBsonDocument))
            : throw new InvalidOperationException("this pipeline ends with $merge and returns no rows: use MergeAsync");

    /// <summary>The aggregate command options (allowDiskUse, maxTimeMS).</summary>
    public AggregateOptions AggregateOptions => new()
    {
        AllowDiskUse = Options.AllowDiskUse ? true : null,
        MaxTime = Options.MaxTime,
    };

    /// <summary>Renders the pipeline with the driver's own renderer: the documents of the <c>pipeline</c> field of <c>aggregate</c>.</summary>
    public IReadOnlyList<BsonDocument> Render()
    {
        var pipeline = new BsonDocumentStagePipelineDefinition<BsonDocument, BsonDocument>(Stages.Select(s => s.DeepClone().AsBsonDocument));
        return [.. pipeline.Render(new RenderArgs<BsonDocument>(BsonDocumentSerializer.Instance, BsonSerializer.SerializerRegistry)).Documents];
    }

    /// <summary>Runs the pipeline on <see cref="UserAnalyticsOptions.UsersCollection"/> and returns the rows, highest revenue first.</summary>
    public async Task<IReadOnlyList<UserRegionStats>> RunAsync(IMongoDatabase database, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        var users = database.GetCollection<BsonDocument>(Options.UsersCollection);
        using var cursor = await users.AggregateAsync(Pipeline, AggregateOptions, cancellationToken).ConfigureAwait(false);
        return await cursor.ToListAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs the pipeline ending in <c>$merge</c>: refreshes the materialized view; returns nothing.</summary>
    public async Task MergeAsync(IMongoDatabase database, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        if (Options.MergeInto is null) throw new InvalidOperationException("MergeInto is not set: use RunAsync");
        var users = database.GetCollection<BsonDocument>(Options.UsersCollection);
        var pipeline = new BsonDocumentStagePipelineDefinition<BsonDocument, BsonDocument>(Stages.Select(s => s.DeepClone().AsBsonDocument));
        await users.AggregateToCollectionAsync(pipeline, AggregateOptions, cancellationToken).ConfigureAwait(false);
    }

    private static List<BsonDocument> BuildStages(UserAnalyticsOptions o)
    {
        var stages = new List<BsonDocument> { new("$match", new BsonDocument("status", o.Status)) };
        if (o.ProjectEarly)
        {
            // Only what later stages read: _id joins the orders, region groups.
            stages.Add(new("$project", new BsonDocument { { "_id", 1 }, { "region", 1 } }));
            stages.Add(new("$lookup", new BsonDocument
            {
                { "from", o.OrdersCollection },
                { "localField", "_id" },
                { "foreignField", "user_id" },
                { "pipeline", new BsonArray { new BsonDocument("$project", new BsonDocument { { "_id", 0 }, { "amount", 1 } }) } },
                { "as", "orders" },
            }));
        }
        else
        {
            stages.Add(new("$lookup", new BsonDocument
            {
                { "from", o.OrdersCollection },
                { "localField", "_id" },
                { "foreignField", "user_id" },
                { "as", "orders" },
            }));
        }
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
