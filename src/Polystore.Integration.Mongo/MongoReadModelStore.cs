using System.Text.Json;
using MongoDB.Bson;
using MongoDB.Driver;

using Polystore.Integration.Projections;

namespace Polystore.Integration.Mongo;

/// <summary>
/// A read model in a MongoDB collection of <c>{ _id, version, doc, updated_at }</c> documents. The write
/// is idempotent: the filter matches only an older version, so a duplicate or stale event either changes
/// nothing or hits the unique <c>_id</c> and is ignored. It is not part of the outbox dispatcher's
/// PostgreSQL transaction: a crash before the checkpoint commits redelivers the event, which then changes nothing.
/// </summary>
/// <typeparam name="T">The document type.</typeparam>
public sealed class MongoReadModelStore<T> : IReadModelStore<T>
{
    private readonly IMongoCollection<BsonDocument> _collection;
    private readonly JsonSerializerOptions _json;

    /// <summary>Creates the store over <paramref name="collection"/>.</summary>
    public MongoReadModelStore(IMongoDatabase database, string collection, JsonSerializerOptions? json = null)
    {
        _collection = database.GetCollection<BsonDocument>(collection);
        _json = json ?? new JsonSerializerOptions(JsonSerializerDefaults.Web);
    }

    /// <inheritdoc />
    public string Description => $"MongoDB {_collection.Database.DatabaseNamespace.DatabaseName}.{_collection.CollectionNamespace.CollectionName}";

    /// <inheritdoc />
    public Task EnsureCreatedAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    /// <summary>The exact filter and update sent for one write (also what tests assert).</summary>
    internal (BsonDocument Filter, BsonDocument Update) BuildWrite(string id, long version, T document, DateTime updatedAt) =>
    (
        new BsonDocument { { "_id", id }, { "version", new BsonDocument("$lt", version) } },
        new BsonDocument("$set", new BsonDocument
        {
            { "version", version },
            { "doc", BsonDocument.Parse(JsonSerializer.Serialize(document, _json)) },
            { "updated_at", updatedAt },
        })
    );

    /// <inheritdoc />
    public async Task<bool> UpsertIfNewerAsync(string id, long version, T document, CancellationToken cancellationToken = default)
    {
        var (filter, update) = BuildWrite(id, version, document, DateTime.UtcNow);
        try
        {
            var result = await _collection.UpdateOneAsync(filter, update, new UpdateOptions { IsUpsert = true }, cancellationToken).ConfigureAwait(false);
            return result.ModifiedCount == 1 || result.UpsertedId is not null;
        }
        catch (MongoWriteException e) when (e.WriteError?.Category == ServerErrorCategory.DuplicateKey)
        {
            return false; // a version at least as new is already stored
        }
    }

    /// <inheritdoc />
    public async Task<ReadModel<T>?> GetAsync(string id, CancellationToken cancellationToken = default)
    {
        var found = await _collection.Find(new BsonDocument("_id", id)).FirstOrDefaultAsync(cancellationToken).ConfigureAwait(false);
        if (found is null) return null;
        return new ReadModel<T>(id, found["version"].ToInt64(), JsonSerializer.Deserialize<T>(found["doc"].AsBsonDocument.ToJson(new MongoDB.Bson.IO.JsonWriterSettings { OutputMode = MongoDB.Bson.IO.JsonOutputMode.RelaxedExtendedJson }), _json)!);
    }

    /// <summary>The exact pipeline <see cref="CountByAsync"/> sends.</summary>
    internal static BsonDocument[] CountByPipeline(string field) =>
    [
        new("$group", new BsonDocument { { "_id", $"$doc.{FieldName.Check(field)}" }, { "count", new BsonDocument("$sum", 1) } }),
        new("$sort", new BsonDocument { { "count", -1 }, { "_id", 1 } }),
    ];

    /// <inheritdoc />
    public async Task<IReadOnlyList<KeyValuePair<string, long>>> CountByAsync(string field, CancellationToken cancellationToken = default)
    {
        var rows = await _collection.Aggregate<BsonDocument>(CountByPipeline(field), cancellationToken: cancellationToken).ToListAsync(cancellationToken).ConfigureAwait(false);
        return rows.Select(r => new KeyValuePair<string, long>(r["_id"].IsBsonNull ? "" : r["_id"].ToString()!, r["count"].ToInt64())).ToList();
    }

    /// <inheritdoc />
    public async Task<IReadOnlyDictionary<string, long>> GetVersionsAsync(CancellationToken cancellationToken = default)
    {
        var result = new Dictionary<string, long>();
        var projection = Builders<BsonDocument>.Projection.Include("version");
        await _collection.Find(FilterDefinition<BsonDocument>.Empty).Project(projection)
            .ForEachAsync(d => result[d["_id"].AsString] = d["version"].ToInt64(), cancellationToken).ConfigureAwait(false);
        return result;
    }
}
