using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

public sealed class OutboxTests(OutboxSchema schema) : IClassFixture<OutboxSchema>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_rolled_back_command_leaves_no_event()
    {
        await using var connection = await schema.DataSource.OpenConnectionAsync(Ct);
        await using (var transaction = await connection.BeginTransactionAsync(Ct))
        {
            await schema.Store.AppendAsync(transaction, new OutboxMessage("rollback", "x", 1, "t", "{}"), Ct);
            await transaction.RollbackAsync(Ct);
        }
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox WHERE stream = 'rollback'"));
    }

    [Fact]
    public async Task A_transaction_that_commits_late_is_not_skipped_and_order_is_commit_order()
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        var subscriber = new RecordingSubscriber(schema, "late");
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, subscriber);
        await dispatcher.ProcessAvailableAsync(Ct);
        var before = await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries WHERE subscriber = 'late'");

        // T1 takes the lower id first but commits last.
        await using var slow = await schema.DataSource.OpenConnectionAsync(Ct);
        await using var t1 = await slow.BeginTransactionAsync(Ct);
        await schema.Store.AppendAsync(t1, new OutboxMessage("late", "t1", 1, "t", "{}"), Ct);
        await schema.AppendAsync(3);

        await dispatcher.ProcessAvailableAsync(Ct);
        // While T1 is open nothing behind it is delivered: neither T1's row nor the three after it.
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'late' AND o.stream = 'late'"));
        await t1.CommitAsync(Ct);

        var appended = await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox");
        await Delivery.UntilAsync(dispatcher, async () => await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries WHERE subscriber = 'late'") == appended, Ct);
        Assert.Equal(1, await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'late' AND o.stream = 'late'"));
    }

    [Fact]
    public async Task Concurrent_out_of_order_commits_and_four_dispatchers_deliver_every_event_exactly_once()
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        var subscriber = new RecordingSubscriber(schema, "many");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var options = new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(50), BatchSize = 7 };
        var dispatchers = Enumerable.Range(0, 4).Select(_ => new OutboxDispatcher(schema.DataSource, schema.Store, subscriber, options)).ToList();
        var running = dispatchers.Select(d => Task.Run(() => d.RunAsync(stop.Token), Ct)).ToList();

        // 64 writers, each holding its transaction open for a random time: ids and commits interleave.
        const int writers = 64, perWriter = 10;
        await Parallel.ForEachAsync(Enumerable.Range(0, writers), new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = Ct }, async (w, ct) =>
        {
            for (var i = 0; i < perWriter; i++)
            {
                await using var connection = await schema.DataSource.OpenConnectionAsync(ct);
                await using var transaction = await connection.BeginTransactionAsync(ct);
                await schema.Store.AppendAsync(transaction, new OutboxMessage("many", $"w{w}", i + 1, "t", "{}"), ct);
                await Task.Delay(Random.Shared.Next(0, 5), ct);
                await transaction.CommitAsync(ct);
            }
        });

        var expected = writers * perWriter;
        await Eventually.UntilAsync(async () => await schema.ScalarAsync("SELECT count(DISTINCT d.event_id) FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'many' AND o.stream = 'many'") == expected,
            $"the running dispatchers delivered all {expected} events", Ct);
        await stop.CancelAsync();
        await Task.WhenAll(running);

        Assert.Equal(expected, await schema.ScalarAsync("SELECT count(DISTINCT d.event_id) FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'many' AND o.stream = 'many'"));
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM (SELECT event_id FROM $schema.deliveries WHERE subscriber = 'many' GROUP BY event_id HAVING count(*) > 1) dup"));
        // Delivery order is commit order: (tx_id, id) never decreases along the delivery sequence.
        Assert.Equal(0, await schema.ScalarAsync("""
            SELECT count(*) FROM (
              SELECT o.tx_id, o.id, lag(o.tx_id) OVER (ORDER BY d.seq) AS prev_tx, lag(o.id) OVER (ORDER BY d.seq) AS prev_id
              FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'many') s
            WHERE (tx_id, id) < (prev_tx, prev_id)
            """));
    }

    [Fact]
    public async Task A_poison_event_is_retried_then_dead_lettered_and_the_rest_keep_flowing()
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        await schema.AppendAsync(2, "ok.before");
        await schema.AppendAsync(1, "poison");
        await schema.AppendAsync(2, "ok.after");
        var subscriber = new RecordingSubscriber(schema, "poison") { FailWhen = e => e.Type == "poison" };
        var dispatcher = new OutboxDispatcher(schema.DataSource, schema.Store, subscriber,
            new OutboxDispatcherOptions { MaxAttempts = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(1), RetryMaxDelay = TimeSpan.FromMilliseconds(5) });

        var okCount = await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox WHERE type LIKE 'ok.%'");
        await Delivery.UntilAsync(dispatcher, async () =>
            await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'poison' AND o.type LIKE 'ok.%'") == okCount
            && await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox_dead_letters WHERE name = 'poison'") == 1, Ct);

        Assert.Equal(1, await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox_dead_letters d WHERE d.name = 'poison' AND d.type = 'poison' AND d.attempts = 3 AND d.last_error LIKE 'refusing event %'"));
        Assert.Equal(0, await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'poison' AND o.type = 'poison'"));
        Assert.Equal(await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox WHERE type LIKE 'ok.%'"),
            await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries d JOIN $schema.outbox o ON o.id = d.event_id WHERE d.subscriber = 'poison' AND o.type LIKE 'ok.%'"));
        var status = await new OutboxMonitor(schema.DataSource, schema.Store).GetStatusAsync("poison", Ct);
        Assert.Equal((0L, 1L), (status.Pending, status.DeadLetters));
    }

    [Fact]
    public async Task Only_one_dispatcher_leads_at_a_time_and_a_standby_takes_over_when_the_leader_stops()
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        var subscriber = new RecordingSubscriber(schema, "leader");
        var options = new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(20) };
        var dispatchers = Enumerable.Range(0, 3).Select(_ => new OutboxDispatcher(schema.DataSource, schema.Store, subscriber, options)).ToList();
        var stops = dispatchers.Select(_ => CancellationTokenSource.CreateLinkedTokenSource(Ct)).ToList();
        var running = dispatchers.Select((d, i) => Task.Run(() => d.RunAsync(stops[i].Token), Ct)).ToList();
        try
        {
            // A refusal means the lock was held by another dispatcher when this one asked for it.
            await Eventually.UntilAsync(() => dispatchers.All(d => d.IsLeader || d.LeadershipRefusals >= 3),
                "every dispatcher leads or has been refused the lead three times", Ct);
            var leader = Assert.Single(dispatchers, d => d.IsLeader);

            var index = dispatchers.IndexOf(leader);
            await stops[index].CancelAsync();
            await running[index];
            Assert.False(leader.IsLeader);
            var standbys = dispatchers.Where(d => d != leader).ToList();
            var refusedBefore = standbys.Select(d => d.LeadershipRefusals).ToList();
            // A standby asks every 20 ms, so it takes over within moments of the lock's release; the
            // bound stays far below the pool's idle pruning, which would free a lock left on a pooled connection.
            await Eventually.UntilAsync(() => standbys.Any(d => d.IsLeader), "a standby took over from the stopped leader", Ct, TimeSpan.FromSeconds(15));
            await Eventually.UntilAsync(() => standbys.Select((d, i) => d.IsLeader || d.LeadershipRefusals >= refusedBefore[i] + 3).All(ok => ok),
                "the other standby has been refused the lead three more times", Ct);
            Assert.Single(standbys, d => d.IsLeader);
        }
        finally
        {
            foreach (var stop in stops) await stop.CancelAsync();
            await Task.WhenAll(running);
            foreach (var stop in stops) stop.Dispose();
        }
    }

    [Fact]
    public async Task A_leadership_attempt_cancelled_after_the_server_granted_the_lock_gives_the_lock_up()
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        // The dispatcher's sessions find pg_try_advisory_lock in a schema of this test first (search_path): it takes the
        // lock and then sleeps, so the caller's cancel reaches the server while the granting statement still runs.
        // The statement is aborted, but a session-level advisory lock outlives the abort of the statement that took it.
        var shadow = TestServers.UniqueName("grant");
        var application = TestServers.UniqueName("leader");
        await schema.ExecAsync($$"""
            CREATE SCHEMA "{{shadow}}";
            CREATE FUNCTION "{{shadow}}".pg_try_advisory_lock(key bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
            BEGIN
              IF pg_catalog.pg_try_advisory_lock(key) THEN
                PERFORM pg_catalog.pg_sleep(600);
                RETURN true;
              END IF;
              RETURN false;
            END $f$;
            """);
        var sources = PostgresDataSources.Create(TestServers.Postgres, b =>
        {
            b.ConnectionStringBuilder.SearchPath = $"\"{shadow}\", pg_catalog";
            b.ConnectionStringBuilder.ApplicationName = application;
        });
        Task<long> LocksHeldAsync() => schema.ScalarAsync($"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = '{application}' AND l.locktype = 'advisory' AND l.granted");
        try
        {
            var dispatcher = new OutboxDispatcher(sources.Primary, schema.Store, new RecordingSubscriber(schema, "cancelled-grant"));
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var running = Task.Run(() => dispatcher.RunAsync(stop.Token), Ct);
            await Eventually.UntilAsync(async () => await LocksHeldAsync() == 1, "the server granted the leadership lock", Ct);

            await stop.CancelAsync();
            await running;

            Assert.False(dispatcher.IsLeader);
            // Left on the pooled session, the lock would keep every standby out until the pool reused or pruned it.
            Assert.Equal(0, await LocksHeldAsync());
        }
        finally
        {
            await sources.DisposeAsync();
            await schema.ExecAsync($"DROP SCHEMA \"{shadow}\" CASCADE");
        }
    }

    [Fact]
    public async Task Health_reports_a_backlog_then_recovers()
    {
        await RecordingSubscriber.CreateTableAsync(schema);
        var subscriber = new RecordingSubscriber(schema, "health");
        await schema.AppendAsync(2);
        var monitor = new OutboxMonitor(schema.DataSource, schema.Store);
        var check = new OutboxHealthCheck(monitor, "health", TimeSpan.Zero, TimeSpan.FromHours(1));
        var context = new Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckContext();

        var behind = await check.CheckHealthAsync(context, Ct);
        Assert.Equal(Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Degraded, behind.Status);
        Assert.True((long)behind.Data["pending"] >= 2);

        var total = await schema.ScalarAsync("SELECT count(*) FROM $schema.outbox");
        await Delivery.UntilAsync(new OutboxDispatcher(schema.DataSource, schema.Store, subscriber),
            async () => await schema.ScalarAsync("SELECT count(*) FROM $schema.deliveries WHERE subscriber = 'health'") >= total, Ct);
        var caughtUp = await check.CheckHealthAsync(context, Ct);
        Assert.Equal(Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy, caughtUp.Status);
    }
}
