using System.Diagnostics;
using Polystore.Integration.Outbox;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

public sealed class DispatchTelemetryEdgeTests : IDisposable
{
    private const string CallerSource = "Polystore.Tests.DispatchCaller";
    private readonly ActivitySource _caller = new(CallerSource);
    private readonly ActivityCapture _spans = new(IntegrationTelemetry.ActivitySourceName, CallerSource);
    private readonly MetricCapture _metrics = new(IntegrationTelemetry.MeterName);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        _spans.Dispose();
        _metrics.Dispose();
        _caller.Dispose();
    }

    private sealed class NopSubscriber : IOutboxSubscriber
    {
        public string Name => "tel-nop";
        public Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [Fact]
    public async Task Dispatch_span_starts_a_trace_of_its_own_even_when_ProcessAvailableAsync_runs_under_an_activity()
    {
        await using var schema = new OutboxSchema();
        await schema.InitializeAsync();
        await using (var connection = await schema.DataSource.OpenConnectionAsync(Ct))
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            await schema.Store.AppendAsync(transaction, [new OutboxMessage("s", "a", 1, "tel.t", "{}")], Ct);
            await transaction.CommitAsync(Ct);
        }
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, new NopSubscriber());
        ActivityTraceId pollerTrace;
        using (var poller = _caller.StartActivity("poll outbox"))
        {
            Assert.NotNull(poller);
            pollerTrace = poller.TraceId;
            await Delivery.UntilAsync(dispatcher, async () => await new OutboxMonitor(schema.DataSource, schema.Store).GetStatusAsync("tel-nop", Ct) is { Pending: 0 }, Ct);
        }

        var dispatch = Assert.Single(_spans.WithTag("polystore.outbox.schema", schema.Store.Schema), a => a.DisplayName == "outbox_dispatch tel-nop");
        // docs/observability.md: "A dispatch span starts a trace of its own (a batch holds events of many commands)".
        Assert.Equal(default, dispatch.ParentSpanId);
        Assert.NotEqual(pollerTrace, dispatch.TraceId);
    }
}

public sealed class PartialCommitSecretsTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const string Secret = "s3cret-Pw-t3st";

    private sealed class FailingParticipant(string message) : Polystore.Integration.Transactions.ITransactionParticipant
    {
        public string Store => "mongo";
        public Task CommitAsync(CancellationToken cancellationToken) => throw new InvalidOperationException(message);
        public Task AbortAsync() => Task.CompletedTask;
        public bool IsStoreFailure(Exception exception) => true;
        public void Dispose() { }
    }

    [Theory]
    [InlineData("Host=db.internal;Username=app;Password=" + Secret + ";Database=app")]
    [InlineData("connection refused for mongodb://app:" + Secret + "@db.internal:27017/app")]
    public async Task A_participant_commit_failure_keeps_credentials_out_of_the_partial_commit_message(string error)
    {
        var manager = new Polystore.Integration.Transactions.TransactionManager(schema.DataSource);
        var e = await Assert.ThrowsAsync<Polystore.Integration.Transactions.PartialCommitException>(() => manager.ExecuteAsync(async tx =>
        {
            await tx.EnlistAsync("mongo", _ => Task.FromResult(new FailingParticipant(error)), Ct);
        }, Ct));
        Assert.True(e.Report.IsPartial);
        // CommitReport.Error is documented as "Why it failed (secrets removed)".
        Assert.DoesNotContain(Secret, e.Report.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, e.Message, StringComparison.Ordinal);
    }
}

public sealed class AppendTraceContextTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_unrecorded_append_span_stores_the_callers_context_not_its_own()
    {
        await using var schema = new OutboxSchema();
        await schema.InitializeAsync();
        using var caller = new ActivitySource("Polystore.Tests.AppendCaller");
        // The caller's spans are recorded; Polystore.Integration's are created for propagation only (not recorded).
        // (Other test classes' listeners, running in parallel, may record it after all: then its own id is right.)
        Activity? append = null;
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "Polystore.Tests.AppendCaller" or IntegrationTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> o) => o.Source.Name == IntegrationTelemetry.ActivitySourceName
                ? ActivitySamplingResult.PropagationData : ActivitySamplingResult.AllDataAndRecorded,
            ActivityStarted = a => { if (a.OperationName.StartsWith("outbox_append", StringComparison.Ordinal) && a.Parent?.Source.Name == "Polystore.Tests.AppendCaller") append = a; },
        };
        ActivitySource.AddActivityListener(listener);
        string callerId;
        using (var command = caller.StartActivity("create user"))
        {
            Assert.NotNull(command);
            callerId = command.Id!;
            await using var connection = await schema.DataSource.OpenConnectionAsync(Ct);
            await using var transaction = await connection.BeginTransactionAsync(Ct);
            await schema.Store.AppendAsync(transaction, [new OutboxMessage("s", "a", 1, "tel.t", "{}")], Ct);
            await transaction.CommitAsync(Ct);
        }
        // docs/observability.md: "stores the W3C trace context of the current activity (the outbox_append span when it is
        // recorded, else the caller's activity)".
        Assert.NotNull(append);
        Assert.Equal(append.Recorded ? append.Id : callerId, (string?)await schema.ScalarTextAsync());
    }
}

internal static class TelemetryOutboxSchemaExtensions
{
    public static async Task<string?> ScalarTextAsync(this OutboxSchema schema)
    {
        await using var connection = await schema.DataSource.OpenConnectionAsync();
        await using var command = new Npgsql.NpgsqlCommand($"SELECT trace_parent FROM \"{schema.Store.Schema}\".outbox", connection);
        return (string?)await command.ExecuteScalarAsync();
    }
}
