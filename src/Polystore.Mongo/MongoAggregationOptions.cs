namespace Polystore.Mongo;

/// <summary>The <c>aggregate</c> command options of a <see cref="MongoAggregation{TOutput}"/>.</summary>
public sealed record MongoAggregationOptions
{
    /// <summary>Let stages spill to disk past their memory limit (<c>allowDiskUse</c>).</summary>
    public bool AllowDiskUse { get; init; }

    /// <summary>Server-side time limit (<c>maxTimeMS</c>); null for none.</summary>
    public TimeSpan? MaxTime { get; init; }
}
