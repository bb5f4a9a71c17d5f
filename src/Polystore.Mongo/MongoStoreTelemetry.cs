using System.Diagnostics;
using System.Diagnostics.Metrics;
using MongoDB.Driver;
using Polystore.Core.Diagnostics;

namespace Polystore.Mongo;

/// <summary>
/// The names Polystore.Mongo reports traces and metrics under: pass <see cref="ActivitySourceName"/> to
/// OpenTelemetry's <c>AddSource</c> and <see cref="MeterName"/> to <c>AddMeter</c> (or call
/// <c>AddPolystoreInstrumentation()</c> from Polystore.OpenTelemetry). Spans and instruments cost nothing while
/// nobody listens. docs/observability.md lists every span, attribute and instrument. (Not named MongoTelemetry: the
/// driver has a MongoDB.Driver.MongoTelemetry of its own, for its command spans.)
/// </summary>
public static class MongoStoreTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name, "Polystore.Mongo".</summary>
    public const string ActivitySourceName = "Polystore.Mongo";

    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> name, "Polystore.Mongo".</summary>
    public const string MeterName = "Polystore.Mongo";

    /// <summary>
    /// Counter of documents a bulk upsert sent, unit <c>{document}</c>; tags <c>db.collection.name</c> and <c>outcome</c>:
    /// upserted (inserted), modified, unchanged (matched, already equal) or failed (refused by the server).
    /// </summary>
    public const string DocumentsUpserted = "polystore.mongo.bulk_upsert.documents";

    /// <summary>Histogram of whole bulk upsert calls, unit <c>s</c>; tags <c>db.collection.name</c> and, on failure, <c>error.type</c>.</summary>
    public const string BulkUpsertDuration = "polystore.mongo.bulk_upsert.duration";

    /// <summary>Histogram of aggregation runs, unit <c>s</c>; tags <c>db.collection.name</c> (the collection it runs on) and, on failure, <c>error.type</c>.</summary>
    public const string AggregateDuration = "polystore.mongo.aggregate.duration";

    private static readonly string? Version = typeof(MongoStoreTelemetry).Assembly.GetName().Version?.ToString();

    internal static readonly ActivitySource Source = new(ActivitySourceName, Version);

    internal static readonly Meter Meter = new(MeterName, Version);

    internal static readonly Counter<long> Documents = Meter.CreateCounter<long>(DocumentsUpserted, "{document}", "Documents sent by bulk upserts, by outcome.");

    internal static readonly Histogram<double> BulkUpsertSeconds = Meter.CreateHistogram<double>(BulkUpsertDuration, "s", "Duration of bulk upsert calls.");

    internal static readonly Histogram<double> AggregateSeconds = Meter.CreateHistogram<double>(AggregateDuration, "s", "Duration of aggregation runs.");

    /// <summary>
    /// Starts a span named "<paramref name="operation"/> <paramref name="collection"/>" with the database attributes
    /// of <paramref name="database"/>; null (and nothing computed) while nobody listens.
    /// </summary>
    internal static Activity? Start(string operation, string collection, IMongoDatabase database)
    {
        if (!Source.HasListeners()) return null;
        var activity = Source.StartActivity($"{operation} {collection}", ActivityKind.Internal);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("db.system.name", "mongodb");
        activity.SetTag("db.operation.name", operation);
        activity.SetTag("db.collection.name", collection);
        activity.SetTag("db.namespace", database.DatabaseNamespace.DatabaseName);
        // One seed server names the server; a replica set's list does not name the one that answers.
        if (database.Client?.Settings.Servers is { } servers && servers.Take(2).ToList() is [var server])
        {
            activity.SetTag("server.address", server.Host);
            activity.SetTag("server.port", server.Port);
        }
        return activity;
    }

    /// <summary>Marks the span failed: status Error, <c>error.type</c>, and the exception as an event, its text redacted.</summary>
    internal static void Fail(Activity? activity, Exception exception) => SpanFailure.Record(activity, exception);

    /// <summary>Counts one bulk upsert's documents by outcome.</summary>
    internal static void RecordDocuments(string collection, long upserted, long modified, long unchanged, long failed)
    {
        if (!Documents.Enabled) return;
        Add(collection, "upserted", upserted);
        Add(collection, "modified", modified);
        Add(collection, "unchanged", unchanged);
        Add(collection, "failed", failed);

        static void Add(string collection, string outcome, long value)
        {
            if (value > 0) Documents.Add(value, new KeyValuePair<string, object?>("db.collection.name", collection), new KeyValuePair<string, object?>("outcome", outcome));
        }
    }

    /// <summary>Records <paramref name="elapsed"/> in seconds, with <c>error.type</c> on failure.</summary>
    internal static void RecordDuration(Histogram<double> histogram, TimeSpan elapsed, string collection, Exception? failure)
    {
        if (!histogram.Enabled) return;
        var tag = new KeyValuePair<string, object?>("db.collection.name", collection);
        if (failure is null) histogram.Record(elapsed.TotalSeconds, tag);
        else histogram.Record(elapsed.TotalSeconds, tag, new KeyValuePair<string, object?>("error.type", failure.GetType().FullName));
    }
}
