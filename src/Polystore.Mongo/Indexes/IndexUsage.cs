using MongoDB.Bson;
using MongoDB.Bson.Serialization.Serializers;
using MongoDB.Driver;

namespace Polystore.Mongo;

/// <summary>One row of <c>$indexStats</c>: how often an index was used since counting began.</summary>
/// <param name="Collection">The collection.</param>
/// <param name="Name">The index name.</param>
/// <param name="Key">The index key.</param>
/// <param name="Ops">Operations that used the index since <paramref name="Since"/>.</param>
/// <param name="Since">When counting began: server start, or the index's creation if later.</param>
/// <param name="Host">The mongod that reported it (stats are per member).</param>
/// <param name="Shard">The shard, on a sharded cluster.</param>
public sealed record IndexUsage(string Collection, string Name, BsonDocument Key, long Ops, DateTime Since, string Host, string? Shard)
{
    /// <summary>No operation used this index since <see cref="Since"/> (never true for <c>_id_</c>, which is required).</summary>
    public bool Unused => Ops == 0 && Name != "_id_";
}

/// <summary>The index usage report from <c>$indexStats</c>.</summary>
public static class IndexUsageReport
{
    /// <summary>The pipeline sent: <c>[{ $indexStats: {} }]</c> (one document per index per mongod).</summary>
    public static PipelineDefinition<BsonDocument, BsonDocument> Pipeline =>
        new BsonDocumentStagePipelineDefinition<BsonDocument, BsonDocument>([new BsonDocument("$indexStats", new BsonDocument())]);

    /// <summary>The rendered pipeline documents.</summary>
    public static IReadOnlyList<BsonDocument> Render() =>
        [.. Pipeline.Render(new RenderArgs<BsonDocument>(BsonDocumentSerializer.Instance, MongoDB.Bson.Serialization.BsonSerializer.SerializerRegistry)).Documents];

    /// <summary>Turns <c>$indexStats</c> output documents into rows: unused first, then by name.</summary>
    public static IReadOnlyList<IndexUsage> FromStats(string collection, IEnumerable<BsonDocument> stats) =>
    [
        .. stats.Select(s =>
        {
            var accesses = s.GetValue("accesses", new BsonDocument()).AsBsonDocument;
            return new IndexUsage(
                collection,
                s.GetValue("name", "").ToString()!,
                s.GetValue("key", new BsonDocument()).AsBsonDocument,
                accesses.GetValue("ops", 0).ToInt64(),
                accesses.GetValue("since", new BsonDateTime(DateTime.UnixEpoch)).ToUniversalTime(),
                s.GetValue("host", "").ToString()!,
                s.TryGetValue("shard", out var shard) ? shard.ToString() : null);
        }).OrderByDescending(u => u.Unused).ThenBy(u => u.Name, StringComparer.Ordinal).ThenBy(u => u.Host, StringComparer.Ordinal),
    ];

    /// <summary>Runs <c>$indexStats</c> on each collection, on the primary (stats are per member), and returns the rows.</summary>
    public static async Task<IReadOnlyList<IndexUsage>> GetAsync(IMongoDatabase database, IEnumerable<string> collections, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(collections);
        var rows = new List<IndexUsage>();
        foreach (var name in collections.Distinct(StringComparer.Ordinal))
        {
            MongoNames.ValidateCollection(name, nameof(collections));
            var collection = database.GetCollection<BsonDocument>(name).WithReadPreference(ReadPreference.Primary);
            using var cursor = await collection.AggregateAsync(Pipeline, cancellationToken: cancellationToken).ConfigureAwait(false);
            rows.AddRange(FromStats(name, await cursor.ToListAsync(cancellationToken).ConfigureAwait(false)));
        }
        return rows;
    }
}
