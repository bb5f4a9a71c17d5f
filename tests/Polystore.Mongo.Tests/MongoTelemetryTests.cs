using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Mongo.Tests;

/// <summary>
/// Polystore.Mongo's spans, instruments and logging. Without a server, an unreachable one shows the failure path and
/// the driver's own log lines; with POLYSTORE_TEST_MONGO set, the success path runs against the real server.
/// Each test finds its spans and measurements by a collection name of its own.
/// </summary>
public sealed class MongoTelemetryTests : IDisposable
{
    private readonly ActivityCapture _spans = new(MongoStoreTelemetry.ActivitySourceName);
    private readonly MetricCapture _metrics = new(MongoStoreTelemetry.MeterName);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        _spans.Dispose();
        _metrics.Dispose();
    }

    /// <summary>A store whose server refuses connections (a loopback port nobody listens on), giving up after 300 ms.</summary>
    private static MongoStore Unreachable(ILoggerFactory? loggerFactory = null)
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        return MongoStore.Create(new MongoSettings { Connection = new() { Uri = $"mongodb://127.0.0.1:{port}/?directConnection=true", Database = "telemetry" } },
            s => s.ServerSelectionTimeout = TimeSpan.FromMilliseconds(300), loggerFactory);
    }

    [Fact]
    public async Task A_bulk_upsert_that_cannot_reach_the_server_ends_its_span_in_error_with_the_database_attributes()
    {
        using var store = Unreachable();
        var name = TestServers.UniqueName("tele");
        var items = Enumerable.Range(0, 3).Select(i => new UpsertItem(i, new BsonDocument("n", i))).ToList();
        var e = await Assert.ThrowsAsync<MongoBulkUpsertException>(() => MongoBulkUpsert.UpsertAsync(store.Collection(name), items, new MongoBulkUpsertOptions { BatchSize = 2 }, Ct));

        var span = Assert.Single(_spans.WithTag("db.collection.name", name));
        Assert.Equal($"bulk_upsert {name}", span.DisplayName);
        Assert.Equal(("mongodb", "bulk_upsert", "telemetry", "127.0.0.1"), (span.GetTagItem("db.system.name"), span.GetTagItem("db.operation.name"),
            span.GetTagItem("db.namespace"), span.GetTagItem("server.address")));
        Assert.IsType<int>(span.GetTagItem("server.port"));
        Assert.Equal((3, 2), (span.GetTagItem("polystore.bulk_upsert.items"), span.GetTagItem("polystore.bulk_upsert.batch_size")));
        Assert.Equal((ActivityStatusCode.Error, e.Message, typeof(MongoBulkUpsertException).FullName), (span.Status, span.StatusDescription, span.GetTagItem("error.type")));
        Assert.Contains(span.Events, x => x.Name == "exception");
        var duration = Assert.Single(_metrics.Of(MongoStoreTelemetry.BulkUpsertDuration, "db.collection.name", name));
        Assert.Equal(("s", typeof(MongoBulkUpsertException).FullName), (duration.Unit, duration.Tags["error.type"]));
        Assert.Empty(_metrics.Of(MongoStoreTelemetry.DocumentsUpserted, "db.collection.name", name));
    }

    [Fact]
    public async Task An_aggregation_that_cannot_reach_the_server_ends_its_span_in_error()
    {
        using var store = Unreachable();
        var name = TestServers.UniqueName("agg");
        var aggregation = new MongoAggregation<BsonDocument>(name, [new BsonDocument("$match", new BsonDocument("n", 1)), new BsonDocument("$limit", 5)]);
        await Assert.ThrowsAsync<TimeoutException>(() => aggregation.RunAsync(store.Database, Ct));

        var span = Assert.Single(_spans.WithTag("db.collection.name", name));
        Assert.Equal(($"aggregate {name}", "aggregate", 2, false), (span.DisplayName, span.GetTagItem("db.operation.name"),
            span.GetTagItem("polystore.aggregate.stages"), span.GetTagItem("polystore.aggregate.writes_to_collection")));
        Assert.Equal((ActivityStatusCode.Error, typeof(TimeoutException).FullName), (span.Status, span.GetTagItem("error.type")));
        Assert.Equal(typeof(TimeoutException).FullName, Assert.Single(_metrics.Of(MongoStoreTelemetry.AggregateDuration, "db.collection.name", name)).Tags["error.type"]);
    }

    [Fact]
    public async Task The_logger_factory_reaches_the_driver()
    {
        var logs = new LogCapture();
        Assert.Same(logs, MongoDriverSettings.Build(new MongoSettings(), logs).LoggingSettings.LoggerFactory);
        Assert.Null(MongoDriverSettings.Build(new MongoSettings()).LoggingSettings);

        using var store = Unreachable(logs);
        await Assert.ThrowsAsync<TimeoutException>(() => store.Collection("x").CountDocumentsAsync(FilterDefinition<BsonDocument>.Empty, cancellationToken: Ct));
        // The driver's own structured logs (server discovery and selection) went to the factory.
        Assert.Contains(logs.Logs, l => l.Category.StartsWith("MongoDB.", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_bulk_upsert_counts_documents_by_outcome_and_warns_about_refused_items()
    {
        if (TestServers.Mongo is not { } mongo)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        var logs = new LogCapture();
        using var store = MongoStore.Create(mongo, loggerFactory: logs);
        var name = TestServers.UniqueName("tele");
        var users = store.Collection(name);
        try
        {
            await users.Indexes.CreateOneAsync(new CreateIndexModel<BsonDocument>(new BsonDocument("email", 1), new CreateIndexOptions { Unique = true }), cancellationToken: Ct);
            await users.InsertManyAsync([new BsonDocument { { "_id", 0 }, { "email", "u0@x" } }, new BsonDocument { { "_id", 1 }, { "email", "u1@x" }, { "n", -1 } }], cancellationToken: Ct);
            var items = Enumerable.Range(0, 5).Select(i => new UpsertItem(i, new BsonDocument { { "email", $"u{i}@x" } })).ToList();
            items[4] = new UpsertItem(4, new BsonDocument("email", "u2@x")); // duplicate email: refused
            var result = await MongoBulkUpsert.UpsertAsync(users, items, cancellationToken: Ct);

            var span = Assert.Single(_spans.WithTag("db.collection.name", name));
            Assert.Equal(ActivityStatusCode.Unset, span.Status);
            Assert.Equal((2L, 0L, 2L, 1), (span.GetTagItem("polystore.bulk_upsert.matched"), span.GetTagItem("polystore.bulk_upsert.modified"),
                span.GetTagItem("polystore.bulk_upsert.upserted"), span.GetTagItem("polystore.bulk_upsert.failed")));
            var documents = _metrics.Of(MongoStoreTelemetry.DocumentsUpserted, "db.collection.name", name);
            Assert.Equal(2, documents.Where(m => Equals(m.Tags["outcome"], "upserted")).Sum(m => m.Value));
            Assert.Equal(2, documents.Where(m => Equals(m.Tags["outcome"], "unchanged")).Sum(m => m.Value));
            Assert.Equal(1, documents.Where(m => Equals(m.Tags["outcome"], "failed")).Sum(m => m.Value));
            Assert.Single(result.Failures);
            var warning = Assert.Single(logs.Logs, l => l.EventId.Id == 4001);
            Assert.Equal((LogLevel.Warning, "Polystore.Mongo.BulkUpsert"), (warning.Level, warning.Category));
        }
        finally
        {
            await store.Database.DropCollectionAsync(name, CancellationToken.None);
        }
    }
}
