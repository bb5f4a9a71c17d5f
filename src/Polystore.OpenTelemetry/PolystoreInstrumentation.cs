namespace Polystore.OpenTelemetry;

/// <summary>
/// The <see cref="System.Diagnostics.ActivitySource"/> and <see cref="System.Diagnostics.Metrics.Meter"/> names of the Polystore
/// libraries (the same as their <c>PostgresTelemetry</c>, <c>RedisTelemetry</c>, <c>MongoStoreTelemetry</c> and
/// <c>IntegrationTelemetry</c> constants), and of the drivers underneath.
/// </summary>
public static class PolystoreInstrumentation
{
    /// <summary>"Polystore.Postgres", "Polystore.Redis", "Polystore.Mongo", "Polystore.Integration": one source per library.</summary>
    public static IReadOnlyList<string> ActivitySourceNames { get; } = ["Polystore.Postgres", "Polystore.Redis", "Polystore.Mongo", "Polystore.Integration"];

    /// <summary>The meters, named like the sources: one per library.</summary>
    public static IReadOnlyList<string> MeterNames { get; } = ["Polystore.Postgres", "Polystore.Redis", "Polystore.Mongo", "Polystore.Integration"];

    /// <summary>
    /// The drivers' own sources: "Npgsql" (a span per command) and "MongoDB.Driver" (a span per operation and command).
    /// StackExchange.Redis has none; its spans come from OpenTelemetry.Instrumentation.StackExchangeRedis.
    /// </summary>
    public static IReadOnlyList<string> DriverActivitySourceNames { get; } = ["Npgsql", "MongoDB.Driver"];

    /// <summary>The drivers' own meters: "Npgsql" (<c>db.client.operation.duration</c>, <c>db.client.connection.*</c>).</summary>
    public static IReadOnlyList<string> DriverMeterNames { get; } = ["Npgsql"];
}
