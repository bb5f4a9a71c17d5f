using System.Text.Json;

namespace Polystore.Integration.Cqrs;

/// <summary>How a <see cref="ReadModelCache{T}"/> caches: the Redis lifetime, and optional copies in this process.</summary>
public sealed class ReadModelCacheOptions
{
    /// <summary>How long a document lives in Redis (one hour by default, ±10 %); bounds staleness if an invalidation is lost.</summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How long this process keeps its own copy of a document it read (off by default). A copy answers without a round
    /// trip to Redis; every instance drops it when the projection invalidates the document (over a Redis channel), so a
    /// copy is stale only for the channel's delivery time, and for at most this long after a lost connection.
    /// </summary>
    public TimeSpan LocalTtl { get; set; } = TimeSpan.Zero;

    /// <summary>The most documents this process keeps (10,000 by default); beyond it, reads go to Redis.</summary>
    public int LocalCapacity { get; set; } = 10_000;

    /// <summary>How documents are serialized in Redis; web defaults when null.</summary>
    public JsonSerializerOptions? Json { get; set; }

    /// <summary>The clock of the local copies' lifetime; the system clock when null.</summary>
    public TimeProvider? TimeProvider { get; set; }
}
