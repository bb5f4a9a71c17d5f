using System.Diagnostics;
using Polystore.Core.Diagnostics;

namespace Polystore.Redis;

/// <summary>
/// The names Polystore.Redis reports traces and metrics under: pass <see cref="ActivitySourceName"/> to
/// OpenTelemetry's <c>AddSource</c> and <see cref="MeterName"/> to <c>AddMeter</c> (or call
/// <c>AddPolystoreInstrumentation()</c> from Polystore.OpenTelemetry). The instruments are named in <see cref="RedisMetrics"/>.
/// Spans and instruments cost nothing while nobody listens. docs/observability.md lists every span, attribute and instrument.
/// </summary>
public static class RedisTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name, "Polystore.Redis".</summary>
    public const string ActivitySourceName = "Polystore.Redis";

    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> name, "Polystore.Redis" (the same as <see cref="RedisMetrics.MeterName"/>).</summary>
    public const string MeterName = RedisMetrics.MeterName;

    internal static readonly ActivitySource Source = new(ActivitySourceName, typeof(RedisTelemetry).Assembly.GetName().Version?.ToString());

    /// <summary>
    /// Starts a span named "<paramref name="operation"/> <paramref name="prefix"/>" (the component's key prefix: keys
    /// themselves are too many to name spans by); null (and nothing computed) while nobody listens.
    /// </summary>
    internal static Activity? Start(string operation, string prefix, ActivityContext parent = default)
    {
        if (!Source.HasListeners()) return null;
        var activity = Source.StartActivity($"{operation} {prefix}", ActivityKind.Internal, parent);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("db.system.name", "redis");
        activity.SetTag("polystore.redis.prefix", prefix);
        return activity;
    }

    /// <summary>Marks the span failed: status Error, <c>error.type</c>, and the exception as an event, its text redacted.</summary>
    internal static void Fail(Activity? activity, Exception exception) => SpanFailure.Record(activity, exception);
}
