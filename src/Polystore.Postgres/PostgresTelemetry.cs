using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Npgsql;
using Polystore.Core.Diagnostics;
using Polystore.Postgres.BulkUpsert;

namespace Polystore.Postgres;

/// <summary>
/// The names Polystore.Postgres reports traces and metrics under: pass <see cref="ActivitySourceName"/> to
/// OpenTelemetry's <c>AddSource</c> and <see cref="MeterName"/> to <c>AddMeter</c> (or call
/// <c>AddPolystoreInstrumentation()</c> from Polystore.OpenTelemetry). Spans and instruments cost nothing while
/// nobody listens. docs/observability.md lists every span, attribute and instrument.
/// </summary>
public static class PostgresTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name, "Polystore.Postgres".</summary>
    public const string ActivitySourceName = "Polystore.Postgres";

    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> name, "Polystore.Postgres".</summary>
    public const string MeterName = "Polystore.Postgres";

    /// <summary>
    /// Counter of rows a bulk upsert committed, unit <c>{row}</c>; tags <c>db.collection.name</c> (the table as the caller
    /// named it), <c>technique</c> (unnest | copy) and <c>outcome</c> (inserted | updated | skipped: a later duplicate of a
    /// key in the batch, or a conflict under DO NOTHING). Inside the caller's transaction the rows count when the
    /// statement completes, since the caller owns the commit.
    /// </summary>
    public const string RowsUpserted = "polystore.postgres.bulk_upsert.rows";

    /// <summary>Histogram of whole bulk upsert calls, unit <c>s</c>; tags <c>db.collection.name</c>, <c>mode</c> (atomic | chunked | parallel | transaction) and, on failure, <c>error.type</c>.</summary>
    public const string BulkUpsertDuration = "polystore.postgres.bulk_upsert.duration";

    /// <summary>Histogram of keyset page fetches, unit <c>s</c>; tags <c>db.collection.name</c>, <c>direction</c> (forward | backward) and, on failure, <c>error.type</c>.</summary>
    public const string KeysetPageDuration = "polystore.postgres.keyset.page.duration";

    private static readonly string? Version = typeof(PostgresTelemetry).Assembly.GetName().Version?.ToString();

    internal static readonly ActivitySource Source = new(ActivitySourceName, Version);

    internal static readonly Meter Meter = new(MeterName, Version);

    internal static readonly Counter<long> Rows = Meter.CreateCounter<long>(RowsUpserted, "{row}", "Rows committed by bulk upserts.");

    internal static readonly Histogram<double> BulkUpsertSeconds = Meter.CreateHistogram<double>(BulkUpsertDuration, "s", "Duration of bulk upsert calls.");

    internal static readonly Histogram<double> KeysetPageSeconds = Meter.CreateHistogram<double>(KeysetPageDuration, "s", "Duration of keyset page fetches.");

    // The database and server behind a data source, parsed from its connection string once.
    private static readonly ConditionalWeakTable<NpgsqlDataSource, Target> Targets = new();

    private sealed record Target(string? Database, string? Host, int Port);

    /// <summary>
    /// Names the database and server behind <paramref name="dataSource"/> where its connection string cannot (the primary
    /// of a multi-host data source: the configured primary host).
    /// </summary>
    internal static void Describe(NpgsqlDataSource dataSource, string database, string? host, int port) =>
        Targets.AddOrUpdate(dataSource, new Target(database, host, port));

    /// <summary>
    /// Starts a span named "<paramref name="operation"/> <paramref name="table"/>" with the database attributes of
    /// <paramref name="dataSource"/> or <paramref name="connection"/>; null (and nothing computed) while nobody listens.
    /// </summary>
    internal static Activity? Start(string operation, string table, NpgsqlDataSource? dataSource, NpgsqlConnection? connection = null)
    {
        if (!Source.HasListeners()) return null;
        var activity = Source.StartActivity($"{operation} {table}", ActivityKind.Internal);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("db.system.name", "postgresql");
        activity.SetTag("db.operation.name", operation);
        activity.SetTag("db.collection.name", table);
        var target = connection is not null ? new Target(connection.Database, connection.Host, connection.Port)
            : dataSource is not null ? Targets.GetValue(dataSource, Parse) : null;
        if (target is null) return activity;
        activity.SetTag("db.namespace", target.Database);
        // A multi-host data source has no single server to name.
        if (target.Host is { } host && !host.Contains(',', StringComparison.Ordinal))
        {
            activity.SetTag("server.address", host);
            activity.SetTag("server.port", target.Port);
        }
        return activity;
    }

    private static Target Parse(NpgsqlDataSource dataSource)
    {
        var builder = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        return new Target(builder.Database, builder.Host, builder.Port);
    }

    /// <summary>Marks the span failed: status Error, <c>error.type</c>, and the exception as an event, its text redacted.</summary>
    internal static void Fail(Activity? activity, Exception exception) => SpanFailure.Record(activity, exception);

    /// <summary>Counts the rows of one committed batch.</summary>
    internal static void RecordRows(string table, UpsertTechniques technique, long rows, long inserted, long updated)
    {
        if (!Rows.Enabled || rows == 0) return;
        var name = TechniqueName(technique);
        Add(table, name, "inserted", inserted);
        Add(table, name, "updated", updated);
        Add(table, name, "skipped", rows - inserted - updated);

        static void Add(string table, string technique, string outcome, long value)
        {
            if (value > 0)
                Rows.Add(value, new KeyValuePair<string, object?>("db.collection.name", table), new KeyValuePair<string, object?>("technique", technique),
                    new KeyValuePair<string, object?>("outcome", outcome));
        }
    }

    /// <summary>"unnest", "copy", or both joined with a comma.</summary>
    internal static string TechniqueName(UpsertTechniques technique) => technique switch
    {
        UpsertTechniques.Unnest => "unnest",
        UpsertTechniques.Copy => "copy",
        UpsertTechniques.Unnest | UpsertTechniques.Copy => "unnest,copy",
        _ => "none",
    };

    internal static string ModeName(PostgresBulkUpsertMode? mode) => mode switch
    {
        PostgresBulkUpsertMode.Atomic => "atomic",
        PostgresBulkUpsertMode.Chunked => "chunked",
        PostgresBulkUpsertMode.Parallel => "parallel",
        null => "transaction",
        _ => "unknown",
    };

    /// <summary>Records <paramref name="elapsed"/> in seconds, with <c>error.type</c> on failure.</summary>
    internal static void RecordDuration(Histogram<double> histogram, TimeSpan elapsed, string table, KeyValuePair<string, object?> tag, Exception? failure)
    {
        if (!histogram.Enabled) return;
        var seconds = elapsed.TotalSeconds;
        var collection = new KeyValuePair<string, object?>("db.collection.name", table);
        if (failure is null) histogram.Record(seconds, collection, tag);
        else histogram.Record(seconds, collection, tag, new KeyValuePair<string, object?>("error.type", failure.GetType().FullName));
    }
}
