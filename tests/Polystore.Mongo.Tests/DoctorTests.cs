using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core.Diagnostics;
using Polystore.Mongo.Diagnostics;
using Polystore.Testing;

namespace Polystore.Mongo.Tests;

/// <summary>The command documents the MongoDB checks send, compared with the shapes in the MongoDB manual.</summary>
public sealed class DoctorCommandTests
{
    [Fact]
    public void Index_stats_is_an_aggregate_with_a_single_indexStats_stage() =>
        // https://www.mongodb.com/docs/manual/reference/operator/aggregation/indexStats/ ; aggregate command needs a cursor document.
        Assert.Equal("""{ "aggregate" : "users", "pipeline" : [{ "$indexStats" : { } }], "cursor" : { } }""", MongoDiagnosticCommands.IndexStats("users").ToJson());

    [Fact]
    public void List_collections_asks_for_names_of_real_collections_only() =>
        Assert.Equal("""{ "listCollections" : 1, "nameOnly" : true, "filter" : { "type" : "collection" } }""", MongoDiagnosticCommands.ListCollections().ToJson());

    [Fact]
    public void Current_op_filters_active_operations_by_secs_running() =>
        // https://www.mongodb.com/docs/manual/reference/command/currentOp/ : db.adminCommand({ currentOp: true, active: true, secs_running: { $gte: 3 } })
        Assert.Equal("""{ "currentOp" : true, "active" : true, "secs_running" : { "$gte" : 10 } }""", MongoDiagnosticCommands.CurrentOp(10).ToJson());

    [Fact]
    public void Repl_set_get_status_is_the_admin_command() =>
        Assert.Equal("""{ "replSetGetStatus" : 1 }""", MongoDiagnosticCommands.ReplSetGetStatus().ToJson());

    [Fact]
    public void Oplog_edges_read_one_timestamp_in_natural_order_each_way()
    {
        Assert.Equal("""{ "find" : "oplog.rs", "filter" : { }, "sort" : { "$natural" : 1 }, "projection" : { "ts" : 1, "_id" : 0 }, "limit" : 1, "singleBatch" : true }""",
            MongoDiagnosticCommands.OplogEdge(newest: false).ToJson());
        Assert.Equal("""{ "find" : "oplog.rs", "filter" : { }, "sort" : { "$natural" : -1 }, "projection" : { "ts" : 1, "_id" : 0 }, "limit" : 1, "singleBatch" : true }""",
            MongoDiagnosticCommands.OplogEdge(newest: true).ToJson());
        Assert.Equal("""{ "collStats" : "oplog.rs" }""", MongoDiagnosticCommands.OplogStats().ToJson());
    }

    [Fact]
    public void Not_configured_is_one_info_finding()
    {
        var f = StoreFindings.NotConfigured(Core.Configuration.StoreNames.Mongo, "/etc/polystore");
        Assert.Equal(("mongo", "mongo.configured", Severity.Info), (f.Store, f.Check, f.Severity));
        Assert.Equal("/etc/polystore", f.Evidence["config_directory"]);
    }

    [Fact]
    public async Task The_four_checks_are_listed_and_the_password_is_a_secret()
    {
        await using var doctor = new MongoDiagnostics(new Core.Configuration.MongoSettings { Connection = new() { Uri = "mongodb://u:s3cret-pw@db.example:27017" } });
        Assert.Equal(["mongo.unused_indexes", "mongo.slow_operations", "mongo.replica_set", "mongo.oplog_window"], doctor.Checks.Select(c => c.Name));
        Assert.Contains("s3cret-pw", doctor.Secrets);
    }
}

public sealed class DoctorServerTests
{
    [Fact]
    public async Task An_unused_index_is_reported_and_every_check_completes()
    {
        if (TestServers.Mongo is not { } settings)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        var collection = TestServers.UniqueName("doc");
        using var client = new MongoClient(MongoDriverSettings.Build(settings));
        var db = client.GetDatabase(settings.Connection.Database);
        var c = db.GetCollection<BsonDocument>(collection);
        await c.InsertOneAsync(new BsonDocument("v", 1), cancellationToken: TestContext.Current.CancellationToken);
        await c.Indexes.CreateOneAsync(new CreateIndexModel<BsonDocument>(new BsonDocument("v", 1), new CreateIndexOptions { Name = "v_unused" }), cancellationToken: TestContext.Current.CancellationToken);
        try
        {
            await using var doctor = new MongoDiagnostics(settings, new MongoDiagnosticOptions { MaxFindingsPerCheck = 1000 });
            var report = await DiagnosticRunner.RunAsync(doctor.Checks, secrets: doctor.Secrets, cancellationToken: TestContext.Current.CancellationToken);

            Assert.All(report.Checks, x => Assert.Equal(CheckOutcome.Completed, x.Outcome));
            var unused = Assert.Single(report.Findings, f => f.Check == "mongo.unused_indexes" && f.Evidence["collection"] == collection);
            Assert.Equal(("v_unused", "0"), (unused.Evidence["index"], unused.Evidence["accesses.ops"]));
            Assert.StartsWith($"db.getSiblingDB(\"{settings.Connection.Database}\").getCollection(\"{collection}\").hideIndex(\"v_unused\")", unused.Remedy, StringComparison.Ordinal);
            Assert.Single(report.Findings, f => f.Check == "mongo.oplog_window");
        }
        finally
        {
            await db.DropCollectionAsync(collection, TestContext.Current.CancellationToken);
        }
    }
}
