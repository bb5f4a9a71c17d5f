using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Integration.Transactions;
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

    // What PostgreSQL itself says when a value that holds a connection string does not cast: the value, quoted.
    private const string Secret = "hunter2pw";
    private const string Leaky = $"Host=db;Password={Secret};Username=app redis://app:{Secret}@cache:6379";

    private static async Task FailQuotingTheSecretAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var cast = new NpgsqlCommand("SELECT $1::text::int", connection, transaction);
        cast.Parameters.AddWithValue(Leaky);
        await cast.ExecuteScalarAsync(cancellationToken);
    }

    private static void AssertNoSecretIn(IReadOnlyList<CapturedLog> logs)
    {
        foreach (var log in logs)
            Assert.DoesNotContain(Secret, $"{log.Message} {log.Exception?.Message} {log.Exception} {log.Exception?.StackTrace} {log.Exception?.InnerException}", StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_subscriber_failure_that_quotes_a_password_is_logged_with_the_password_hidden()
    {
        var logs = new LogCapture();
        await using var sources = PostgresDataSources.Create(TestServers.Postgres, loggerFactory: logs);
        var store = new OutboxStore(TestServers.UniqueName("leaky"));
        await store.EnsureCreatedAsync(sources.Primary, Ct);
        try
        {
            await using (var connection = await sources.Primary.OpenConnectionAsync(Ct))
            await using (var transaction = await connection.BeginTransactionAsync(Ct))
            {
                await store.AppendAsync(transaction, [new OutboxMessage("s", "a", 1, "t", "{}"), new OutboxMessage("s", "a", 2, "t", "{}")], Ct);
                await transaction.CommitAsync(Ct);
            }
            var options = new OutboxDispatcherOptions { MaxAttempts = 2, RetryBaseDelay = TimeSpan.Zero, RetryMaxDelay = TimeSpan.Zero };
            var dispatcher = new OutboxDispatcher(sources.Primary, store, new Leaking(), options);
            var monitor = new OutboxMonitor(sources.Primary, store);
            await Delivery.UntilAsync(dispatcher, async () => (await monitor.GetStatusAsync("leaking", Ct)).DeadLetters == 2, Ct);

            var failures = logs.Logs.Where(l => l.EventId.Id is 103 or 104 or 105).ToList();
            Assert.Equal([103, 104, 105], failures.Select(l => l.EventId.Id).Distinct().Order());
            Assert.All(failures, l => Assert.Contains("Password=***", l.Exception!.Message, StringComparison.Ordinal));
            Assert.All(failures, l => Assert.StartsWith("Npgsql.PostgresException", l.Exception!.ToString(), StringComparison.Ordinal));
            AssertNoSecretIn(logs.Logs);

            // The dead letters' last_error (listed, and printed by `polystore outbox dead-letters`) hides it too, and so
            // does the last_error a failed replay writes back.
            var deadLetters = new OutboxDeadLetters(sources.Primary, store);
            var letters = await deadLetters.ListAsync("leaking", cancellationToken: Ct);
            Assert.Equal(2, letters.Count);
            Assert.All(letters, l => Assert.Contains("Password=***", l.LastError, StringComparison.Ordinal));
            await Assert.ThrowsAsync<PostgresException>(() => deadLetters.ReplayAsync(new Leaking(), null, "tester", Ct));
            letters = await deadLetters.ListAsync("leaking", cancellationToken: Ct);
            Assert.Contains(letters, l => l.Attempts == 3);
            Assert.All(letters, l => Assert.DoesNotContain(Secret, l.LastError, StringComparison.Ordinal));
        }
        finally
        {
            await ExecAsync(sources, $"DROP SCHEMA IF EXISTS \"{store.Schema}\" CASCADE");
        }
    }

    [Fact]
    public async Task A_compensation_failure_that_quotes_a_password_is_logged_with_the_password_hidden()
    {
        var logs = new LogCapture();
        await using var sources = PostgresDataSources.Create(TestServers.Postgres, loggerFactory: logs);
        var manager = new TransactionManager(sources.Primary, logger: logs.CreateLogger("tx"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => manager.ExecuteAsync(tx =>
        {
            tx.AddCompensation("undo", async cancellationToken =>
            {
                await using var connection = await sources.Primary.OpenConnectionAsync(cancellationToken);
                await FailQuotingTheSecretAsync(connection, null, cancellationToken);
            });
            throw new InvalidOperationException("the work failed");
        }, Ct));

        var failed = Assert.Single(logs.Logs, l => l.EventId.Id == 202);
        Assert.Contains("Password=***", failed.Exception!.Message, StringComparison.Ordinal);
        AssertNoSecretIn(logs.Logs);
    }

    private sealed class Leaking : IOutboxSubscriber
    {
        public string Name => "leaking";

        public Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken) =>
            FailQuotingTheSecretAsync(context.Connection, context.Transaction, cancellationToken);
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
