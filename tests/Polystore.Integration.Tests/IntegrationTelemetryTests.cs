using System.Diagnostics;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Mongo;
using Polystore.OpenTelemetry;
using Polystore.Postgres;
using Polystore.Redis;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

/// <summary>
/// The outbox's spans and instruments against the real server. Each test has an outbox schema of its own and finds its
/// spans and measurements by that schema, since listeners see every test class running in parallel.
/// </summary>
public sealed class IntegrationTelemetryTests : IDisposable
{
    private const string CommandSource = "Polystore.Tests.Commands";
    private readonly ActivitySource _commands = new(CommandSource);
    private readonly ActivityCapture _spans = new(IntegrationTelemetry.ActivitySourceName, CommandSource);
    private readonly MetricCapture _metrics = new(IntegrationTelemetry.MeterName);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public sealed record Doc(string Type);

    public void Dispose()
    {
        _spans.Dispose();
        _metrics.Dispose();
        _commands.Dispose();
    }

    private static async Task<OutboxSchema> OwnOutboxAsync()
    {
        var schema = new OutboxSchema();
        await schema.InitializeAsync();
        return schema;
    }

    private static async Task AppendAsync(OutboxSchema schema, params OutboxMessage[] messages)
    {
        await using var connection = await schema.DataSource.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        await schema.Store.AppendAsync(transaction, messages, Ct);
        await transaction.CommitAsync(Ct);
    }

    private IReadOnlyList<Activity> Spans(OutboxSchema schema, string name) =>
        [.. _spans.WithTag("polystore.outbox.schema", schema.Store.Schema).Where(a => a.DisplayName == name)];

    [Fact]
    public async Task The_dispatch_span_links_to_the_trace_the_events_were_appended_in_and_the_projection_runs_under_it()
    {
        await using var schema = await OwnOutboxAsync();
        var store = new PostgresJsonbReadModelStore<Doc>(schema.DataSource, schema.Store.Schema, "docs");
        await store.EnsureCreatedAsync(Ct);
        ActivityTraceId commandTrace;
        ActivitySpanId commandSpan;
        using (var command = _commands.StartActivity("create user"))
        {
            Assert.NotNull(command);
            (commandTrace, commandSpan) = (command.TraceId, command.SpanId);
            await AppendAsync(schema, new OutboxMessage("user", "u1", 1, "user.created", "{}"), new OutboxMessage("user", "u2", 1, "user.renamed", "{}"));
        }

        var projection = new ReadModelProjection<Doc>("docs", store, e => new Doc(e.Type));
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, projection);
        await Delivery.UntilAsync(dispatcher, async () => await store.GetAsync("u2", Ct) is not null, Ct);

        var append = Assert.Single(Spans(schema, $"outbox_append {schema.Store.Schema}"));
        Assert.Equal((ActivityKind.Producer, commandTrace, commandSpan), (append.Kind, append.TraceId, append.ParentSpanId));
        Assert.Equal((2, "user.created,user.renamed", "postgresql", $"{schema.Store.Schema}.outbox"), (append.GetTagItem("polystore.outbox.events"),
            append.GetTagItem("polystore.outbox.event_type"), append.GetTagItem("db.system.name"), append.GetTagItem("db.collection.name")));
        // Each row keeps the trace context it was appended in.
        await using (var read = schema.DataSource.CreateCommand($"SELECT DISTINCT trace_parent FROM \"{schema.Store.Schema}\".outbox"))
            Assert.Equal(append.Id, await read.ExecuteScalarAsync(Ct));

        var dispatch = Assert.Single(Spans(schema, "outbox_dispatch docs"));
        Assert.Equal(ActivityKind.Consumer, dispatch.Kind);
        // A trace of its own, linked (once: both events share the context) to the command's.
        Assert.NotEqual(commandTrace, dispatch.TraceId);
        var link = Assert.Single(dispatch.Links);
        Assert.Equal((commandTrace, append.SpanId), (link.Context.TraceId, link.Context.SpanId));
        Assert.Equal(("docs", 2, "user.created,user.renamed", false), (dispatch.GetTagItem("polystore.outbox.subscriber"), dispatch.GetTagItem("polystore.outbox.events"),
            dispatch.GetTagItem("polystore.outbox.event_type"), dispatch.GetTagItem("polystore.outbox.one_at_a_time")));
        Assert.Equal(ActivityStatusCode.Unset, dispatch.Status);

        var apply = Assert.Single(_spans.All, a => a.DisplayName == "projection_apply docs" && a.TraceId == dispatch.TraceId);
        Assert.Equal(dispatch.SpanId, apply.ParentSpanId);
        Assert.Equal((2, 2, true, store.Description), (apply.GetTagItem("polystore.projection.events"), apply.GetTagItem("polystore.projection.documents"),
            apply.GetTagItem("polystore.projection.in_transaction"), apply.GetTagItem("polystore.projection.store")));

        Assert.Equal(2, _metrics.Of(IntegrationTelemetry.EventsAppended, "schema", schema.Store.Schema).Sum(m => m.Value));
        var dispatched = Assert.Single(_metrics.Of(IntegrationTelemetry.EventsDispatched, "schema", schema.Store.Schema));
        Assert.Equal((2.0, "docs", "{event}"), (dispatched.Value, dispatched.Tags["subscriber"], dispatched.Unit));
        var lags = _metrics.Of(IntegrationTelemetry.DeliveryLag, "schema", schema.Store.Schema);
        Assert.Equal(2, lags.Count);
        Assert.All(lags, l => Assert.Equal(("s", "docs"), (l.Unit, l.Tags["subscriber"])));
        Assert.All(lags, l => Assert.InRange(l.Value, 0, 600));
    }

    [Fact]
    public async Task A_failing_subscriber_makes_error_spans_and_is_counted_through_to_the_dead_letter()
    {
        await using var schema = await OwnOutboxAsync();
        await AppendAsync(schema, new OutboxMessage("s", "a", 1, "bad", "{}"));
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, new ThrowingSubscriber(), new OutboxDispatcherOptions { MaxAttempts = 1 });
        await Delivery.UntilAsync(dispatcher, async () => await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox_dead_letters") == 1, Ct);

        var spans = Spans(schema, "outbox_dispatch thrower");
        Assert.Equal(2, spans.Count);
        Assert.All(spans, s => Assert.Equal((ActivityStatusCode.Error, typeof(InvalidOperationException).FullName), (s.Status, s.GetTagItem("error.type"))));
        Assert.All(spans, s => Assert.Contains(s.Events, e => e.Name == "exception"));
        // The batch first, then the event alone, which is dead-lettered after its one attempt.
        Assert.Equal((false, true), ((bool)spans[0].GetTagItem("polystore.outbox.one_at_a_time")!, (bool)spans[1].GetTagItem("polystore.outbox.one_at_a_time")!));
        Assert.Equal((1, true), (spans[1].GetTagItem("polystore.outbox.attempt"), spans[1].GetTagItem("polystore.outbox.dead_lettered")));
        Assert.Equal(2, _metrics.Of(IntegrationTelemetry.HandlerFailures, "schema", schema.Store.Schema).Sum(m => m.Value));
        Assert.Equal(1, _metrics.Of(IntegrationTelemetry.DeadLettered, "schema", schema.Store.Schema).Sum(m => m.Value));
        Assert.Empty(_metrics.Of(IntegrationTelemetry.EventsDispatched, "schema", schema.Store.Schema));
    }

    [Fact]
    public async Task The_backlog_gauges_report_what_the_dispatcher_last_measured()
    {
        await using var schema = await OwnOutboxAsync();
        await AppendAsync(schema, new OutboxMessage("s", "a", 1, "t", "{}"), new OutboxMessage("s", "b", 1, "t", "{}"), new OutboxMessage("s", "c", 1, "t", "{}"));
        var subscriber = new GateSubscriber();
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, subscriber, new OutboxDispatcherOptions { BacklogMeasureInterval = TimeSpan.Zero });
        IReadOnlyList<CapturedMeasurement> Gauge(string name)
        {
            _metrics.Clear();
            _metrics.RecordObservables();
            return _metrics.Of(name, "schema", schema.Store.Schema);
        }

        // Delivering waits in the subscriber: the dispatcher measured just before.
        var delivering = Task.Run(() => Delivery.UntilAsync(dispatcher, () => Task.FromResult(subscriber.Delivered == 3), Ct), Ct);
        await subscriber.Entered.Task.WaitAsync(Ct);
        var backlog = Assert.Single(Gauge(IntegrationTelemetry.Backlog));
        Assert.Equal((3.0, "gate", "{event}"), (backlog.Value, backlog.Tags["subscriber"], backlog.Unit));
        var lag = Assert.Single(Gauge(IntegrationTelemetry.Lag));
        Assert.Equal("s", lag.Unit);
        Assert.True(lag.Value > 0, $"the oldest pending event has an age, got {lag.Value}");

        subscriber.Open.SetResult();
        await delivering;
        Assert.Equal(0, Assert.Single(Gauge(IntegrationTelemetry.Backlog)).Value);
        Assert.Equal(0, Assert.Single(Gauge(IntegrationTelemetry.Lag)).Value);
    }

    [Fact]
    public async Task AddPolystoreInstrumentation_subscribes_the_OpenTelemetry_SDK_to_every_Polystore_source_and_meter()
    {
        Assert.Equal([PostgresTelemetry.ActivitySourceName, RedisTelemetry.ActivitySourceName, MongoStoreTelemetry.ActivitySourceName, IntegrationTelemetry.ActivitySourceName],
            PolystoreInstrumentation.ActivitySourceNames);
        Assert.Equal([PostgresTelemetry.MeterName, RedisTelemetry.MeterName, MongoStoreTelemetry.MeterName, IntegrationTelemetry.MeterName], PolystoreInstrumentation.MeterNames);
        Assert.Equal(RedisMetrics.MeterName, RedisTelemetry.MeterName);
        Assert.Contains(MongoDB.Driver.MongoTelemetry.ActivitySourceName, PolystoreInstrumentation.DriverActivitySourceNames);

        await using var schema = await OwnOutboxAsync();
        var spans = new List<Activity>();
        var metrics = new List<Metric>();
        using (var tracing = Sdk.CreateTracerProviderBuilder().AddPolystoreInstrumentation(includeDrivers: true).AddInMemoryExporter(spans).Build())
        using (var meters = Sdk.CreateMeterProviderBuilder().AddPolystoreInstrumentation(includeDrivers: true).AddInMemoryExporter(metrics).Build())
        {
            await AppendAsync(schema, new OutboxMessage("s", "a", 1, "otel.test", "{}"));
            var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, new ThrowingSubscriber { Throws = false });
            await Delivery.UntilAsync(dispatcher, async () => await new OutboxMonitor(schema.DataSource, schema.Store).GetStatusAsync("thrower", Ct) is { Pending: 0 }, Ct);
            tracing.ForceFlush();
            meters.ForceFlush();
        }

        var append = Assert.Single(spans, s => s.DisplayName == $"outbox_append {schema.Store.Schema}");
        var dispatch = Assert.Single(spans, s => s.DisplayName == "outbox_dispatch thrower" && Equals(s.GetTagItem("polystore.outbox.schema"), schema.Store.Schema));
        Assert.Equal(append.TraceId, Assert.Single(dispatch.Links).Context.TraceId);
        // With the drivers' sources, Npgsql's command spans nest under Polystore's.
        Assert.Contains(spans, s => s.Source.Name == "Npgsql" && s.ParentSpanId == dispatch.SpanId);
        Assert.Contains(metrics, m => m.Name == IntegrationTelemetry.EventsDispatched && m.MeterName == IntegrationTelemetry.MeterName);
        Assert.Contains(metrics, m => m.MeterName == "Npgsql");
    }

    /// <summary>Throws on every event (or not, for a subscriber that only needs a name).</summary>
    private sealed class ThrowingSubscriber : IOutboxSubscriber
    {
        public bool Throws { get; init; } = true;

        public string Name => "thrower";

        public Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken) =>
            Throws ? throw new InvalidOperationException($"refusing event {outboxEvent.Id}") : Task.CompletedTask;
    }

    /// <summary>Holds its first batch until <see cref="Open"/> is set.</summary>
    private sealed class GateSubscriber : IOutboxSubscriber
    {
        private int _delivered;

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Open { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Delivered => Volatile.Read(ref _delivered);

        public string Name => "gate";

        public Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken) => throw new NotSupportedException();

        public async Task HandleBatchAsync(IReadOnlyList<OutboxEvent> events, OutboxContext context, CancellationToken cancellationToken)
        {
            Entered.TrySetResult();
            await Open.Task.WaitAsync(cancellationToken);
            Interlocked.Add(ref _delivered, events.Count);
        }
    }
}
