using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using Polystore.Testing;

namespace Polystore.Mongo.Tests;

public sealed class BulkUpsertTests
{
    private static readonly RenderArgs<BsonDocument> Args = new(BsonSerializer.LookupSerializer<BsonDocument>(), BsonSerializer.SerializerRegistry);

    private static UpsertItem Item(BsonValue id, string data) => new(id, BsonDocument.Parse(data));

    [Fact]
    public void Each_item_becomes_an_upserting_UpdateOne_with_set()
    {
        // Manual, db.collection.bulkWrite(): { updateOne: { filter: { _id: ... }, update: { $set: ... }, upsert: true } }
        UpsertItem[] items =
        [
            Item(7, """{ "name": "Ann", "region": "eu" }"""),
            Item("u-8", """{ "profile.city": "Oslo", "tags": ["a", "b"] }"""),
            Item(new ObjectId("65f000000000000000000001"), """{ "_id": { "$oid": "65f000000000000000000001" }, "score": 3 }"""),
        ];
        var models = MongoBulkUpsert.BuildModels(items, 0, items.Length);
        var rendered = models.Cast<UpdateOneModel<BsonDocument>>().Select(m => new BsonDocument
        {
            { "filter", m.Filter.Render(Args) },
            { "update", m.Update.Render(Args) },
            { "upsert", m.IsUpsert },
        }).ToArray();
        Assert.Equal(
        [
            BsonDocument.Parse("""{ "filter": { "_id": 7 }, "update": { "$set": { "name": "Ann", "region": "eu" } }, "upsert": true }"""),
            BsonDocument.Parse("""{ "filter": { "_id": "u-8" }, "update": { "$set": { "profile.city": "Oslo", "tags": ["a", "b"] } }, "upsert": true }"""),
            BsonDocument.Parse("""{ "filter": { "_id": { "$oid": "65f000000000000000000001" } }, "update": { "$set": { "_id": { "$oid": "65f000000000000000000001" }, "score": 3 } }, "upsert": true }"""),
        ], rendered);
        Assert.All(models, m => Assert.Equal(WriteModelType.UpdateOne, m.ModelType));
    }

    [Fact]
    public void Models_do_not_alias_the_callers_documents()
    {
        var item = Item(1, """{ "a": 1 }""");
        var model = (UpdateOneModel<BsonDocument>)MongoBulkUpsert.BuildModels([item], 0, 1)[0];
        item.Data["a"] = 2;
        Assert.Equal(BsonDocument.Parse("""{ "$set": { "a": 1 } }"""), model.Update.Render(Args));
    }

    [Fact]
    public void Batches_cover_every_item_once()
    {
        Assert.Equal([(0, 1000), (1000, 1000), (2000, 500)], MongoBulkUpsert.BatchRanges(2500, 1000));
        Assert.Equal([(0, 3)], MongoBulkUpsert.BatchRanges(3, 1000));
        Assert.Empty(MongoBulkUpsert.BatchRanges(0, 1000));
        var models = MongoBulkUpsert.BuildModels([.. Enumerable.Range(0, 10).Select(i => Item(i, $$"""{ "n": {{i}} }"""))], 4, 3);
        Assert.Equal([4, 5, 6], models.Cast<UpdateOneModel<BsonDocument>>().Select(m => m.Filter.Render(Args)["_id"].AsInt32));
    }

    [Theory]
    [InlineData("""{ "$inc": { "n": 1 } }""", "items[1] (_id 2): data.$inc: field name starts with '$'")]
    [InlineData("""{ "a": { "$gt": 1 } }""", "items[1] (_id 2): data.a.$gt: field name starts with '$'")]
    [InlineData("""{ "a.$b": 1 }""", "items[1] (_id 2): data.a.$b: field name starts with '$'")]
    [InlineData("""{ "list": [ { "$x": 1 } ] }""", "items[1] (_id 2): data.list[].$x: field name starts with '$'")]
    [InlineData("""{ "_id": 3, "a": 1 }""", "items[1] (_id 2): data._id is 3, which differs from the _id; _id is immutable")]
    [InlineData("""{ }""", "items[1] (_id 2): data is empty: nothing to $set")]
    public void Bad_input_is_refused_before_anything_is_sent(string data, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => MongoBulkUpsert.Validate([Item(1, """{ "ok": true }"""), Item(2, data)], new MongoBulkUpsertOptions()));
        Assert.Contains("nothing was sent", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_problem_is_listed_and_ids_are_checked()
    {
        var e = Assert.Throws<ArgumentException>(() => MongoBulkUpsert.Validate(
            [new UpsertItem(BsonNull.Value, new BsonDocument("a", 1)), new UpsertItem(new BsonArray { 1 }, new BsonDocument("a", 1)), Item(5, """{ "_id": 5, "a": 1 }""")],
            new MongoBulkUpsertOptions()));
        Assert.Contains("2 problems", e.Message, StringComparison.Ordinal);
        Assert.Contains("items[0]: _id is null", e.Message, StringComparison.Ordinal);
        Assert.Contains("items[1] (_id [1]): _id cannot be an array", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100_001)]
    public void Batch_size_is_bounded(int size) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => MongoBulkUpsert.Validate([], new MongoBulkUpsertOptions { BatchSize = size }));

    [Fact]
    public void Batch_relative_errors_map_to_the_callers_index_and_id()
    {
        var items = Enumerable.Range(0, 30).Select(i => Item($"id{i}", """{ "a": 1 }""")).ToArray();
        var failures = MongoBulkUpsert.MapFailures(items, 20, [(3, 11000, "E11000 duplicate key"), (9, 40, "conflict")]).ToArray();
        Assert.Equal([new MongoBulkUpsertFailure(23, "id23", 11000, "E11000 duplicate key"), new MongoBulkUpsertFailure(29, "id29", 40, "conflict")], failures);
    }
}

public sealed class BulkUpsertServerTests
{
    [Fact]
    public async Task Unordered_batches_count_and_report_per_item_failures()
    {
        if (TestServers.Mongo is not { } mongo)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        var ct = TestContext.Current.CancellationToken;
        using var store = MongoStore.Create(mongo);
        var name = TestServers.UniqueName("bulk");
        var users = store.Collection(name);
        try
        {
            await users.Indexes.CreateOneAsync(new CreateIndexModel<BsonDocument>(new BsonDocument("email", 1), new CreateIndexOptions { Unique = true }), cancellationToken: ct);
            await users.InsertManyAsync([new BsonDocument { { "_id", 0 }, { "email", "u0@x" }, { "n", 0 } }, new BsonDocument { { "_id", 1 }, { "email", "u1@x" }, { "n", -1 } }], cancellationToken: ct);
            var items = Enumerable.Range(0, 2500).Select(i => new UpsertItem(i, new BsonDocument { { "email", $"u{i}@x" }, { "n", i } })).ToList();
            items[1500] = new UpsertItem(1500, new BsonDocument("email", "u7@x")); // duplicate email: per-item failure in batch 2
            var result = await MongoBulkUpsert.UpsertAsync(users, items, new MongoBulkUpsertOptions { BatchSize = 1000 }, ct);
            Assert.Equal(3, result.Batches);
            Assert.Equal(2, result.Matched);   // _id 0 and 1 existed
            Assert.Equal(1, result.Modified);  // _id 0 already had these values
            Assert.Equal(2497, result.Upserted);
            var failure = Assert.Single(result.Failures);
            Assert.Equal((1500, (BsonValue)1500, 11000), (failure.Index, failure.Id, failure.Code));
            Assert.Equal(2499, await users.CountDocumentsAsync(FilterDefinition<BsonDocument>.Empty, cancellationToken: ct));
        }
        finally
        {
            await store.Database.DropCollectionAsync(name, CancellationToken.None);
        }
    }
}
