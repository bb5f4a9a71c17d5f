using System.Diagnostics;
using System.Diagnostics.Metrics;
using Polystore.Core.Diagnostics;
using Polystore.Integration.Outbox;

namespace Polystore.Integration;

/// <summary>
/// The names Polystore.Integration reports traces and metrics under: pass <see cref="ActivitySourceName"/> to
/// OpenTelemetry's <c>AddSource</c> and <see cref="MeterName"/> to <c>AddMeter</c> (or call
/// <c>AddPolystoreInstrumentation()</c> from Polystore.OpenTelemetry). Spans and instruments cost nothing while
/// nobody listens. docs/observability.md lists every span, attribute and instrument.
/// </summary>
public static class IntegrationTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name, "Polystore.Integration".</summary>
    public const string ActivitySourceName = "Polystore.Integration";

    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> name, "Polystore.Integration".</summary>
    public const string MeterName = "Polystore.Integration";

    /// <summary>Counter of events appended to an outbox, unit <c>{event}</c>; tag <c>schema</c>. Counted at append, before the caller's commit.</summary>
    public const string EventsAppended = "polystore.outbox.events_appended";

    /// <summary>Counter of events handled and checkpointed, unit <c>{event}</c>; tags <c>schema</c>, <c>subscriber</c>.</summary>
    public const string EventsDispatched = "polystore.outbox.events_dispatched";

    /// <summary>Counter of subscriber calls that threw, unit <c>{call}</c>; tags <c>schema</c>, <c>subscriber</c>.</summary>
    public const string HandlerFailures = "polystore.outbox.handler_failures";

    /// <summary>Counter of events moved to the dead-letter table, unit <c>{event}</c>; tags <c>schema</c>, <c>subscriber</c>.</summary>
    public const string DeadLettered = "polystore.outbox.dead_lettered";

    /// <summary>Counter of after-commit actions (cache invalidations) that failed, unit <c>{action}</c>; tags <c>schema</c>, <c>subscriber</c>.</summary>
    public const string AfterCommitFailures = "polystore.outbox.after_commit_failures";

    /// <summary>Histogram of the time from append to checkpointed delivery of each event (projection lag), unit <c>s</c>; tags <c>schema</c>, <c>subscriber</c>.</summary>
    public const string DeliveryLag = "polystore.outbox.delivery_lag";

    /// <summary>
    /// Gauge of events appended but not yet delivered to a subscriber, unit <c>{event}</c>; tags <c>schema</c>, <c>subscriber</c>.
    /// The figure its dispatcher last measured (at most once per <see cref="Outbox.OutboxDispatcherOptions.BacklogMeasureInterval"/>,
    /// and only while someone observes it): reading the gauge never queries the database.
    /// </summary>
    public const string Backlog = "polystore.outbox.backlog";

    /// <summary>Gauge of the age of the oldest event not yet delivered to a subscriber (0 when caught up), unit <c>s</c>; measured with <see cref="Backlog"/>.</summary>
    public const string Lag = "polystore.outbox.lag";

    private static readonly string? Version = typeof(IntegrationTelemetry).Assembly.GetName().Version?.ToString();

    internal static readonly ActivitySource Source = new(ActivitySourceName, Version);

    internal static readonly Meter Meter = new(MeterName, Version);

    internal static readonly Counter<long> Appended = Meter.CreateCounter<long>(EventsAppended, "{event}", "Events appended to the outbox.");

    internal static readonly Counter<long> Dispatched = Meter.CreateCounter<long>(EventsDispatched, "{event}", "Events handled and checkpointed.");

    internal static readonly Counter<long> Failures = Meter.CreateCounter<long>(HandlerFailures, "{call}", "Subscriber calls that threw.");

    internal static readonly Counter<long> DeadLetters = Meter.CreateCounter<long>(DeadLettered, "{event}", "Events moved to the dead-letter table.");

    internal static readonly Counter<long> AfterCommit = Meter.CreateCounter<long>(AfterCommitFailures, "{action}", "After-commit actions (cache invalidations) that failed.");

    internal static readonly Histogram<double> Lags = Meter.CreateHistogram<double>(DeliveryLag, "s", "Time from append to checkpointed delivery (projection lag).");

    internal static readonly ObservableGauge<long> BacklogGauge = Meter.CreateObservableGauge(Backlog,
        () => OutboxFigures.Latest().Select(f => new Measurement<long>(f.Backlog, f.Tags)), "{event}", "Events not yet delivered to the subscriber, as its dispatcher last measured.");

    internal static readonly ObservableGauge<double> LagGauge = Meter.CreateObservableGauge(Lag,
        () => OutboxFigures.Latest().Select(f => new Measurement<double>(f.LagSeconds, f.Tags)), "s", "Age of the oldest event not yet delivered to the subscriber, as its dispatcher last measured.");

    /// <summary>Whether anyone observes the backlog gauges (only then do dispatchers measure).</summary>
    internal static bool BacklogObserved => BacklogGauge.Enabled || LagGauge.Enabled;

    /// <summary>Marks the span failed: status Error, <c>error.type</c>, and the exception as an event, its text redacted.</summary>
    internal static void Fail(Activity? activity, Exception exception) => SpanFailure.Record(activity, exception);

    /// <summary>The event type when all share one, else the distinct types joined with commas (in first-seen order).</summary>
    internal static string EventTypes<T>(IReadOnlyList<T> items, Func<T, string> type)
    {
        var first = type(items[0]);
        for (var i = 1; i < items.Count; i++)
            if (type(items[i]) != first) return string.Join(',', items.Select(type).Distinct(StringComparer.Ordinal));
        return first;
    }
}
