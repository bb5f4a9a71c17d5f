namespace Polystore.Samples.Users;

/// <summary>Options of <see cref="UserAnalyticsPipeline"/>.</summary>
public sealed record UserAnalyticsOptions
{
    /// <summary>The users collection the pipeline runs on.</summary>
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
