using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using Polystore.Core.Configuration;

namespace Polystore.Mongo.Tests;

/// <summary>Inputs and settings that once slipped past the checks (each test reproduced a bug).</summary>
public sealed class InputHardeningTests
{
    private static readonly RenderArgs<BsonDocument> Args = new(BsonSerializer.LookupSerializer<BsonDocument>(), BsonSerializer.SerializerRegistry);

    // an _id that is a query-operator document or a regex becomes a predicate in the upsert filter.
    public static TheoryData<BsonValue> PredicateIds => new()
    {
        new BsonDocument("$gt", 1),
        new BsonRegularExpression("^a"),
    };

    [Theory]
    [MemberData(nameof(PredicateIds))]
    public void An_id_the_server_reads_as_a_predicate_is_refused_before_sending(BsonValue id)
    {
        UpsertItem[] items = [new(id, new BsonDocument("name", "x"))];
        var filter = ((UpdateOneModel<BsonDocument>)MongoBulkUpsert.BuildModels(items, 0, 1)[0]).Filter.Render(Args);
        Assert.Equal(new BsonDocument("_id", id), filter);   // as it would be sent: it would match other documents
        Assert.Throws<ArgumentException>(() => MongoBulkUpsert.Validate(items, new MongoBulkUpsertOptions()));
    }

    // README promises "no $-prefixed field names at any depth"; arrays of arrays are not walked.
    [Fact]
    public void Dollar_field_names_inside_nested_arrays_are_refused()
    {
        UpsertItem[] items = [new(1, BsonDocument.Parse("""{ "a": [[{ "$where": 1 }]] }"""))];
        Assert.Throws<ArgumentException>(() => MongoBulkUpsert.Validate(items, new MongoBulkUpsertOptions()));
    }

    // URI options that YAML does not set are thrown away.
    [Fact]
    public void A_partial_yaml_write_concern_keeps_the_uris_w_and_wtimeout()
    {
        var c = MongoDriverSettings.Build(new MongoSettings
        {
            Connection = new() { Uri = "mongodb://h/?w=majority&wtimeoutMS=5000" },
            Replication = new() { WriteConcern = new() { J = true } },
        });
        Assert.Equal(WriteConcern.WMajority.W, c.WriteConcern.W);
        Assert.Equal(TimeSpan.FromSeconds(5), c.WriteConcern.WTimeout);
    }

    [Fact]
    public void Read_preference_tags_and_max_staleness_from_the_uri_survive()
    {
        var c = MongoDriverSettings.Build(new MongoSettings
        {
            Connection = new() { Uri = "mongodb://h1,h2/?replicaSet=rs0&readPreference=secondary&readPreferenceTags=dc:east&maxStalenessSeconds=120" },
            Replication = new() { ReadPreference = MongoReadPreference.Secondary },
        });
        Assert.NotEmpty(c.ReadPreference.TagSets);
        Assert.Equal(TimeSpan.FromSeconds(120), c.ReadPreference.MaxStaleness);
    }

    // YAML defaults always overwrite the URI's readPreference / pool options, though YAML never set them.
    [Fact]
    public void Uri_read_preference_and_pool_size_survive_when_yaml_does_not_set_them()
    {
        var c = MongoDriverSettings.Build(new MongoSettings { Connection = new() { Uri = "mongodb://h1,h2/?replicaSet=rs0&readPreference=secondary&maxPoolSize=5" } });
        Assert.Equal(ReadPreferenceMode.Secondary, c.ReadPreference.ReadPreferenceMode);
        Assert.Equal(5, c.MaxConnectionPoolSize);
    }

    // 0 leaves the URI's maxIdleTimeMS (else the driver's 10 minutes); a value sets it.
    [Fact]
    public void Max_idle_time_zero_keeps_the_uris_and_a_value_sets_it()
    {
        Assert.Equal(TimeSpan.FromSeconds(30), MongoDriverSettings.Build(new MongoSettings { Connection = new() { Uri = "mongodb://h/?maxIdleTimeMS=30000" } }).MaxConnectionIdleTime);
        Assert.Equal(TimeSpan.FromSeconds(5), MongoDriverSettings.Build(new MongoSettings { Pool = new() { MaxIdleTimeMs = 5000 } }).MaxConnectionIdleTime);
    }

    [Fact]
    public void Yaml_keys_set_to_other_values_than_their_defaults_win_over_the_uri()
    {
        var c = MongoDriverSettings.Build(new MongoSettings
        {
            Connection = new() { Uri = "mongodb://h1,h2/?replicaSet=rs0&readPreference=secondary&readPreferenceTags=dc:east&maxPoolSize=5&w=2" },
            Pool = new() { MaxPoolSize = 50 },
            Replication = new() { ReadPreference = MongoReadPreference.Nearest, WriteConcern = new() { W = "majority" } },
        });
        Assert.Equal((50, ReadPreferenceMode.Nearest, WriteConcern.WMajority.W), (c.MaxConnectionPoolSize, c.ReadPreference.ReadPreferenceMode, c.WriteConcern.W));
        Assert.NotEmpty(c.ReadPreference.TagSets);
    }

    // one server index is claimed by two declarations (by name and by key) -> dropped twice.
    [Fact]
    public void One_existing_index_is_not_matched_by_two_declarations_nor_dropped_twice()
    {
        IndexDeclaration[] declarations =
        [
            new("events", new IndexField("user", IndexKind.Ascending), new IndexField("created", IndexKind.Descending)) { Name = "by_user" },
            new("events", new IndexField("user", IndexKind.Ascending)),   // user_1
        ];
        MongoIndexes.Validate(declarations);
        BsonDocument[] existing =
        [
            BsonDocument.Parse("""{ "v": 2, "key": { "_id": 1 }, "name": "_id_" }"""),
            BsonDocument.Parse("""{ "v": 2, "key": { "user": 1 }, "name": "by_user" }"""),
        ];
        var (report, commands) = MongoIndexes.Plan("events", declarations, existing, new IndexEnsureOptions { RecreateDiffering = true });
        // Twice would fail the second drop with IndexNotFound, after the first had dropped the index.
        Assert.Single(commands, c => c.Contains("dropIndexes"));
        Assert.Equal(IndexState.Missing, report.Single(r => r.Name == "user_1").State);
    }

    // TTL above the server's limit (2147483647) passes validation and is sent as an Int64.
    [Fact]
    public void A_ttl_above_int32_is_refused()
    {
        var d = new IndexDeclaration("sessions", new IndexField("created_at", IndexKind.Ascending)) { ExpireAfterSeconds = 3_000_000_000 };
        Assert.NotEmpty(d.Validate());
    }

    // README/xmldoc: "every collection named by $lookup, $merge or $out is a valid name"; document forms are skipped.
    [Theory]
    [InlineData("""{ "$out": { "db": "app", "coll": "system.views" } }""")]
    [InlineData("""{ "$merge": { "into": { "db": "app", "coll": "system.views" } } }""")]
    [InlineData("""{ "$merge": { "into": { "db": "app", "coll": "a$b" } } }""")]
    public void Document_forms_of_out_and_merge_into_are_checked(string stage)
    {
        Assert.Throws<ArgumentException>(() => new MongoAggregation<BsonDocument>("users", [BsonDocument.Parse(stage)]));
    }
}
