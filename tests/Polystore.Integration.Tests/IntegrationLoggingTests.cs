using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

/// <summary>
/// An outbox made by an earlier version gains the trace context columns and keeps working; the outbox's log lines reach
/// the logger factory of the data source it runs on.
/// </summary>
public sealed class IntegrationLoggingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_outbox_table_without_trace_columns_is_upgraded_once_and_its_old_events_are_still_delivered()
    {
        var logs = new LogCapture();
        await using var sources = PostgresDataSources.Create(TestServers.Postgres, loggerFactory: logs);
        var store = new OutboxStore(TestServers.UniqueName("oldob"));
        var s = $"\"{store.Schema}\"";
        try
        {
            // The outbox table as the previous version created it, with an event in it.
            await ExecAsync(sources, $"""
                CREATE SCHEMA {s};
                CREATE TABLE {s}.outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                    stream text NOT NULL, aggregate_id text NOT NULL, version bigint NOT NULL, type text NOT NULL, payload jsonb NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT clock_timestamp());
                INSERT INTO {s}.outbox (stream, aggregate_id, version, type, payload) VALUES ('old', 'o1', 1, 'old.event', '{"{}"}');
                """);
            await store.EnsureCreatedAsync(sources.Primary, Ct);
            await store.EnsureCreatedAsync(sources.Primary, Ct);
            var upgraded = Assert.Single(logs.Logs, l => l.EventId.Id == 110 && l.Category.StartsWith("Polystore", StringComparison.Ordinal));
            Assert.Equal((LogLevel.Information, "OutboxSchemaUpgraded"), (upgraded.Level, upgraded.EventId.Name));
            Assert.Contains($"{store.Schema}.outbox", upgraded.Message, StringComparison.Ordinal);

            using var source = new ActivitySource("Polystore.Tests.Upgrade");
            using var capture = new ActivityCapture("Polystore.Tests.Upgrade", IntegrationTelemetry.ActivitySourceName);
            using (source.StartActivity("command"))
            {
                await using var connection = await sources.Primary.OpenConnectionAsync(Ct);
                await using var transaction = await connection.BeginTransactionAsync(Ct);
                await store.AppendAsync(transaction, new OutboxMessage("new", "n1", 1, "new.event", "{}"), Ct);
                await transaction.CommitAsync(Ct);
            }
            var seen = new List<OutboxEvent>();
            var dispatcher = new OutboxDispatcher(sources.Primary, store, new Collecting(seen));
            await Delivery.UntilAsync(dispatcher, () => Task.FromResult(seen.Count == 2), Ct);

            Assert.Equal([("old.event", false), ("new.event", true)], seen.Select(e => (e.Type, e.TraceParent is not null)));
            // The old event has no context to link to: the one link is the new event's.
            var dispatches = capture.WithTag("polystore.outbox.schema", store.Schema).Where(a => a.DisplayName == "outbox_dispatch collector");
            Assert.Equal(ActivityTraceId.CreateFromString(seen[1].TraceParent!.AsSpan(3, 32)), Assert.Single(dispatches.SelectMany(d => d.Links)).Context.TraceId);
        }
        finally
        {
            await ExecAsync(sources, $"DROP SCHEMA IF EXISTS {s} CASCADE");
        }
    }

    [Fact]
    public async Task A_trace_context_that_does_not_parse_is_skipped_with_a_debug_line_and_the_event_is_delivered()
    {
        var logs = new LogCapture();
        await using var sources = PostgresDataSources.Create(TestServers.Postgres, loggerFactory: logs);
        var store = new OutboxStore(TestServers.UniqueName("badtp"));
        await store.EnsureCreatedAsync(sources.Primary, Ct);
        try
        {
            await ExecAsync(sources, $"INSERT INTO \"{store.Schema}\".outbox (stream, aggregate_id, version, type, payload, trace_parent) VALUES ('s', 'a', 1, 't', '{{}}', 'not-a-traceparent')");
            using var capture = new ActivityCapture(IntegrationTelemetry.ActivitySourceName);
            var seen = new List<OutboxEvent>();
            await Delivery.UntilAsync(new OutboxDispatcher(sources.Primary, store, new Collecting(seen)), () => Task.FromResult(seen.Count == 1), Ct);

            Assert.Empty(Assert.Single(capture.WithTag("polystore.outbox.schema", store.Schema)).Links);
            // The dispatcher was given no logger: it logs through the data source's factory.
            var line = Assert.Single(logs.Logs, l => l.EventId.Id == 109 && l.Category == typeof(OutboxDispatcher).FullName);
            Assert.Equal(LogLevel.Debug, line.Level);
        }
        finally
        {
            await ExecAsync(sources, $"DROP SCHEMA IF EXISTS \"{store.Schema}\" CASCADE");
        }
    }

    private static async Task ExecAsync(PostgresDataSources sources, string sql)
    {
        await using var connection = await sources.Primary.OpenConnectionAsync(Ct);
        await using var batch = new NpgsqlCommand(sql, connection);
        await batch.ExecuteNonQueryAsync(Ct);
    }

    private sealed class Collecting(List<OutboxEvent> seen) : IOutboxSubscriber
    {
        public string Name => "collector";

        public Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
        {
            lock (seen) seen.Add(outboxEvent);
            return Task.CompletedTask;
        }
    }
}
