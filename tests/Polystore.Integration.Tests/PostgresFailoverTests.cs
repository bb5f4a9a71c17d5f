using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

/// <summary>
/// PostgreSQL failovers under load on the private pg_auto_failover formation (<c>./run up --pg-ha</c>): commands keep
/// committing (a row and its outbox event in one transaction) through Npgsql's multi-host routing while the engine
/// fails over, and an outbox dispatcher keeps delivering to a subscriber that counts deliveries per command. The
/// tests of this class run one after another, each leaving the formation primary/secondary for the next.
/// </summary>
[Trait("Category", "Chaos")]
public sealed class PostgresFailoverTests
{
    /// <summary>A failed call that took longer than this hung rather than failed fast.</summary>
    private static readonly TimeSpan FailFastBound = TimeSpan.FromSeconds(3);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Commanded_failover_under_load_moves_writes_and_the_dispatcher_to_the_new_primary_losing_and_duplicating_nothing()
    {
        var formation = Formation();
        var row = await RunScenarioAsync(formation, "pg-ha-perform-failover", "pg_autoctl perform failover (synchronous standby)",
            async primary => await formation.PerformFailoverAsync(Ct), restart: null);
        Assert.Equal(0, row.Lost);
        Assert.Equal(0, row.Duplicated);
    }

    [Fact]
    public async Task Primary_node_SIGKILLed_under_load_the_monitor_promotes_the_synchronous_standby_and_every_acknowledged_command_is_delivered_once()
    {
        var formation = Formation();
        var row = await RunScenarioAsync(formation, "pg-ha-kill-primary-sync", "SIGKILL of the primary node (pg_autoctl + postgres), synchronous standby",
            primary => formation.KillNodeAsync(primary, Ct), restart: primary => formation.StartNodeAsync(primary, Ct));
        Assert.Equal(0, row.Lost);
        Assert.Equal(0, row.Duplicated);
    }

    [Fact]
    public async Task Primary_node_SIGKILLed_with_an_asynchronous_standby_loses_only_what_the_standby_had_not_received_and_duplicates_nothing()
    {
        var formation = Formation();
        var primary = await formation.WaitHealthyAsync(Ct);
        var standby = (await formation.StateAsync(Ct)).Single(n => n.Name != primary.Name).Name;
        await formation.SetSynchronousAsync(standby, synchronous: false, Ct);
        try
        {
            var row = await RunScenarioAsync(formation, "pg-ha-kill-primary-async", "SIGKILL of the primary node (pg_autoctl + postgres), asynchronous standby",
                p => formation.KillNodeAsync(p, Ct), restart: p => formation.StartNodeAsync(p, Ct), synchronous: false);
            // What is lost is measured, not asserted: it is whatever the standby had not received at the kill.
            Assert.Equal(0, row.Duplicated);
        }
        finally
        {
            await formation.WaitHealthyAsync(Ct);
            foreach (var node in await formation.StateAsync(Ct)) await formation.SetSynchronousAsync(node.Name, synchronous: true, Ct);
            await formation.WaitHealthyAsync(Ct);
        }
    }

    private static PgAutoFailover Formation()
    {
        var formation = PgAutoFailover.Find(out var reason);
        if (formation is null) Assert.Skip(reason);
        return formation;
    }

    /// <summary>
    /// Runs traffic and a dispatcher, injects the fault (once in the suite's version, three times under
    /// <see cref="ChaosReport.Long"/>), restores the formation, lets the dispatcher drain, then checks every command
    /// acknowledged is delivered exactly once and records the row.
    /// </summary>
    private static async Task<ChaosRow> RunScenarioAsync(PgAutoFailover formation, string scenario, string fault,
        Func<string, Task> inject, Func<string, Task>? restart, bool synchronous = true)
    {
        var rounds = ChaosReport.Long ? 3 : 1;
        var settleTraffic = ChaosReport.Long ? TimeSpan.FromSeconds(5) : TimeSpan.FromSeconds(1);
        await formation.WaitHealthyAsync(Ct);
        await using var sources = PostgresDataSources.Create(formation.Settings);
        var store = new OutboxStore(TestServers.UniqueName("pgha"));
        await store.EnsureCreatedAsync(sources.Primary, Ct);
        await ExecAsync(sources.Primary, $"""
            CREATE TABLE "{store.Schema}".commands (key text PRIMARY KEY);
            CREATE TABLE "{store.Schema}".deliveries (key text PRIMARY KEY, count int NOT NULL);
            """);
        var subscriber = new CountingSubscriber(store.Schema);
        var logs = new LogCapture { MinimumLevel = Microsoft.Extensions.Logging.LogLevel.Information };
        var dispatcher = new OutboxDispatcher(sources.Primary, store, subscriber, new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(200), RetryMaxDelay = TimeSpan.FromSeconds(1) }, logs);
        var traffic = new Traffic(sources.Primary, store);
        using var stop = new CancellationTokenSource();
        using var stopDispatcher = new CancellationTokenSource();
        var dispatching = dispatcher.RunAsync(stopDispatcher.Token);
        var writing = traffic.RunAsync(writers: 4, stop.Token);
        double recoverMs = 0;
        IReadOnlySet<string> committed = new HashSet<string>();
        IReadOnlyDictionary<string, int> delivered = new Dictionary<string, int>();
        try
        {
            for (var round = 0; round < rounds; round++)
            {
                await Task.Delay(settleTraffic, Ct);
                var primary = await formation.WaitHealthyAsync(Ct);
                await Eventually.UntilAsync(() => traffic.Acknowledged > 0, "commands were acknowledged before the fault", Ct);
                var faultAt = traffic.Now;
                await inject(primary.Name);
                // Writes resume on the other node: the first command acknowledged there after the fault.
                await Eventually.UntilAsync(() => traffic.FirstAckOn(primary.Port, faultAt) is not null, "a command was acknowledged by the new primary", Ct, TimeSpan.FromSeconds(90));
                recoverMs = Math.Max(recoverMs, (traffic.FirstAckOn(primary.Port, faultAt)!.Value - faultAt).TotalMilliseconds);
                if (restart is not null) await restart(primary.Name);
                await formation.WaitHealthyAsync(Ct);
            }
            await Task.Delay(settleTraffic, Ct);
            await stop.CancelAsync();
            await writing;
            // The dispatcher that ran through the failover delivers the rest from its checkpoint on the new primary.
            try
            {
                await Eventually.UntilAsync(async () =>
                {
                    committed = await KeysAsync(sources.Primary, $"""SELECT key FROM "{store.Schema}".commands""");
                    delivered = await CountsAsync(sources.Primary, $"""SELECT key, count FROM "{store.Schema}".deliveries""");
                    return committed.All(delivered.ContainsKey);
                }, "the dispatcher delivered every committed command", Ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                var locks = await KeysAsync(sources.Primary, "SELECT pid || ' ' || objid || ' ' || granted || ' ' || coalesce((SELECT state || ' ' || left(query, 80) FROM pg_stat_activity a WHERE a.pid = l.pid), '') FROM pg_locks l WHERE locktype = 'advisory'");
                throw new InvalidOperationException($"{e.Message}; {committed.Count - committed.Count(delivered.ContainsKey)} undelivered; leader: {dispatcher.IsLeader}; advisory locks: {string.Join(" | ", locks)}; dispatcher log: {string.Join(" | ", logs.Logs.TakeLast(30).Select(l => $"{l.Level} {l.Message} {l.Exception?.GetType().Name} {l.Exception?.Message}"))}", e);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await writing;
            await stopDispatcher.CancelAsync();
            await dispatching;
        }

        var acknowledged = traffic.AcknowledgedKeys;
        var lost = acknowledged.Count(k => !committed.Contains(k) || !delivered.ContainsKey(k));
        var duplicated = delivered.Count(d => d.Value > 1);
        // Asynchronous: what the standby never received is gone by design; what survived must still arrive once.
        var invariant = synchronous
            ? $"every acknowledged command delivered exactly once: {(lost == 0 && duplicated == 0 ? "held" : $"broken ({lost} lost, {duplicated} duplicated)")}"
            : $"every surviving command delivered exactly once: {(duplicated == 0 ? "held" : $"broken ({duplicated} duplicated)")}; {lost} acknowledged lost";
        var row = new ChaosRow(scenario, fault + (rounds > 1 ? $", x{rounds}" : ""), traffic.Attempted, traffic.Failed, traffic.FailedFast(FailFastBound),
            lost, duplicated, traffic.UnavailableMs, recoverMs, invariant);
        ChaosReport.Record(row);
        TestContext.Current.SendDiagnosticMessage($"{row}");
        TestContext.Current.TestOutputHelper?.WriteLine($"{row}; errors seen: {traffic.ErrorSummary}");
        if (Environment.GetEnvironmentVariable("PGHA_DEBUG") is { Length: > 0 } debug) File.AppendAllText(debug, $"{DateTime.UtcNow:O} {row}\nerrors: {traffic.ErrorSummary}\n{traffic.Timeline}\n");
        await ExecAsync(sources.Primary, $"""DROP SCHEMA "{store.Schema}" CASCADE""");
        return row;
    }

    private static async Task ExecAsync(NpgsqlDataSource source, string sql)
    {
        await using var command = source.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(Ct);
    }

    private static async Task<IReadOnlySet<string>> KeysAsync(NpgsqlDataSource source, string sql)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using var command = source.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        while (await reader.ReadAsync(Ct)) keys.Add(reader.GetString(0));
        return keys;
    }

    private static async Task<IReadOnlyDictionary<string, int>> CountsAsync(NpgsqlDataSource source, string sql)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        await using var command = source.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        while (await reader.ReadAsync(Ct)) counts[reader.GetString(0)] = reader.GetInt32(1);
        return counts;
    }

    /// <summary>Counts each command's deliveries in the delivery transaction: a second delivery shows as a count of 2.</summary>
    private sealed class CountingSubscriber(string schema) : IOutboxSubscriber
    {
        public string Name => "counter";

        public async Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
        {
            await using var command = new NpgsqlCommand(
                $"""INSERT INTO "{schema}".deliveries (key, count) VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET count = "{schema}".deliveries.count + 1""",
                context.Connection, context.Transaction);
            command.Parameters.AddWithValue(outboxEvent.AggregateId);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Writers committing one command each (its row and its outbox event) as fast as they can; a command counts as
    /// acknowledged once COMMIT returned. A failed one is retried after a short pause under a new key.
    /// </summary>
    private sealed class Traffic(NpgsqlDataSource primary, OutboxStore store)
    {
        private readonly long _started = Stopwatch.GetTimestamp();
        private readonly ConcurrentQueue<(string Key, TimeSpan At, int Port)> _acks = new();
        private readonly ConcurrentDictionary<string, int> _errors = new(StringComparer.Ordinal);
        private readonly ConcurrentQueue<(TimeSpan At, TimeSpan Took)> _failures = new();
        private long _attempted;

        public TimeSpan Now => Stopwatch.GetElapsedTime(_started);
        public long Attempted => Interlocked.Read(ref _attempted);
        public long Acknowledged => _acks.Count;
        public long Failed => _failures.Count;
        public IReadOnlyList<string> AcknowledgedKeys => [.. _acks.Select(a => a.Key)];
        public long FailedFast(TimeSpan bound) => _failures.Count(f => f.Took <= bound);
        public double UnavailableMs => _failures.IsEmpty ? 0 : (_failures.Max(f => f.At) - _failures.Min(f => f.At - f.Took)).TotalMilliseconds;
        public string ErrorSummary => _errors.IsEmpty ? "none" : string.Join("; ", _errors.OrderByDescending(e => e.Value).Select(e => $"{e.Value} x {e.Key}"));

        public string Timeline
        {
            get
            {
                var wall = DateTime.UtcNow - Now;
                return string.Join("\n", _acks.Select(a => (Sec: (int)a.At.TotalSeconds, What: $"ack:{a.Port}"))
                    .Concat(_failures.Select(f => (Sec: (int)f.At.TotalSeconds, What: "fail")))
                    .GroupBy(x => x.Sec).OrderBy(g => g.Key)
                    .Select(g => $"{wall + TimeSpan.FromSeconds(g.Key):HH:mm:ss} " + string.Join(" ", g.GroupBy(x => x.What).Select(w => $"{w.Key}={w.Count()}"))));
            }
        }

        public TimeSpan? FirstAckOn(int notPort, TimeSpan after) =>
            _acks.Where(a => a.At > after && a.Port != notPort).Select(a => (TimeSpan?)a.At).Min();

        public Task RunAsync(int writers, CancellationToken stop) =>
            Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var key = $"w{w}-{i}";
                    var began = Now;
                    Interlocked.Increment(ref _attempted);
                    try
                    {
                        await using var connection = await primary.OpenConnectionAsync(CancellationToken.None);
                        var port = connection.Port;
                        await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None);
                        await using (var insert = new NpgsqlCommand($"""INSERT INTO "{store.Schema}".commands (key) VALUES ($1)""", connection, transaction))
                        {
                            insert.Parameters.AddWithValue(key);
                            await insert.ExecuteNonQueryAsync(CancellationToken.None);
                        }
                        await store.AppendAsync(transaction, new OutboxMessage("pgha", key, 1, "command.done", "{}"), CancellationToken.None);
                        await transaction.CommitAsync(CancellationToken.None);
                        _acks.Enqueue((key, Now, port));
                    }
                    catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
                    {
                        _failures.Enqueue((Now, Now - began));
                        _errors.AddOrUpdate(Describe(e), 1, (_, n) => n + 1);
                        // Paces the retries while no primary answers.
                        await Task.Delay(50, CancellationToken.None);
                    }
                }
            }, CancellationToken.None)));

        private static string Describe(Exception e) => e switch
        {
            PostgresException p => $"{p.SqlState} {p.MessageText}",
            NpgsqlException { InnerException: { } inner } n => $"{n.GetType().Name}: {n.Message} ({inner.GetType().Name})",
            _ => $"{e.GetType().Name}: {e.Message}",
        };
    }
}
