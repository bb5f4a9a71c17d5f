using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Integration.Outbox;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

/// <summary>
/// The outbox through the private PgBouncer in transaction pooling mode (<c>./run up --pgbouncer</c>): batches go
/// through the pooler, the leader's advisory lock and its LISTEN through <c>connection.direct</c>.
/// </summary>
public sealed class PgBouncerOutboxTests : IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private PostgresDataSources? _sources;
    private readonly OutboxStore _store = new(TestServers.UniqueName("pgbob"));

    private static PostgresSettings Settings()
    {
        var settings = TestServers.PgBouncer;
        if (settings is null) Assert.Skip("PgBouncer is not running: start it with ./run up --pgbouncer (./run test does)");
        return settings;
    }

    private PostgresDataSources Sources => _sources ??= PostgresDataSources.Create(Settings());

    public async ValueTask InitializeAsync()
    {
        if (TestServers.PgBouncer is null) return;
        await _store.EnsureCreatedAsync(Sources.Primary, Ct);
        await ExecAsync($"CREATE TABLE {_store.QuotedSchema}.deliveries (subscriber text, event_id bigint)");
    }

    public async ValueTask DisposeAsync()
    {
        if (_sources is null) return;
        await ExecAsync($"DROP SCHEMA IF EXISTS {_store.QuotedSchema} CASCADE");
        await _sources.DisposeAsync();
    }

    private async Task ExecAsync(string sql)
    {
        await using var command = Sources.Primary.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(Ct);
    }

    private async Task<long> DeliveredAsync(string subscriber)
    {
        await using var command = Sources.Primary.CreateCommand($"SELECT count(*) FROM {_store.QuotedSchema}.deliveries WHERE subscriber = $1");
        command.Parameters.AddWithValue(subscriber);
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }

    private async Task AppendAsync(NpgsqlDataSource dataSource, string stream)
    {
        await using var connection = await dataSource.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        await _store.AppendAsync(transaction, new OutboxMessage(stream, "a", 1, "t", "{}"), Ct);
        await transaction.CommitAsync(Ct);
    }

    private sealed class Recorder(OutboxStore store, string name) : IOutboxSubscriber
    {
        public string Name => name;

        public async Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
        {
            await using var command = new NpgsqlCommand($"INSERT INTO {store.QuotedSchema}.deliveries VALUES ($1, $2)", context.Connection, context.Transaction);
            command.Parameters.AddWithValue(name);
            command.Parameters.AddWithValue(outboxEvent.Id);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    [Fact]
    public async Task Without_a_direct_connection_the_dispatcher_refuses_to_run_and_batches_still_work()
    {
        await using var pooledOnly = PostgresDataSources.Create(WithoutDirect(Settings()));
        var dispatcher = new OutboxDispatcher(pooledOnly.Primary, _store, new Recorder(_store, "pooled"));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => dispatcher.RunAsync(Ct));
        Assert.Contains("connection.direct", e.Message, StringComparison.Ordinal);
        Assert.Contains("connection.pooler: pgbouncer-transaction", e.Message, StringComparison.Ordinal);
        Assert.False(dispatcher.IsLeader);

        // Delivering what is there needs no session: it works through the pooler alone.
        await AppendAsync(pooledOnly.Primary, "pooled");
        await Delivery.UntilAsync(dispatcher, async () => await DeliveredAsync("pooled") == 1, Ct);
    }

    [Fact]
    public async Task The_leader_lock_lives_on_the_direct_session_and_passes_to_a_standby()
    {
        var options = new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMilliseconds(50) };
        var subscriber = new Recorder(_store, "leader");
        var dispatchers = Enumerable.Range(0, 2).Select(_ => new OutboxDispatcher(Sources.Primary, _store, subscriber, options)).ToList();
        var stops = dispatchers.Select(_ => CancellationTokenSource.CreateLinkedTokenSource(Ct)).ToList();
        var running = dispatchers.Select((d, i) => Task.Run(() => d.RunAsync(stops[i].Token), Ct)).ToList();
        try
        {
            await Eventually.UntilAsync(() => dispatchers.All(d => d.IsLeader || d.LeadershipRefusals >= 3),
                "one dispatcher leads and the other has been refused the lead three times", Ct);
            var leader = Assert.Single(dispatchers, d => d.IsLeader);

            // Taken through the pooler, the lock would sit on one of PgBouncer's server connections, and a pooled
            // transaction landing there would be granted it again; on the direct session, every pooled one is refused.
            var key = $"polystore.outbox:{_store.Schema}:{subscriber.Name}";
            var granted = await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
            {
                await using var connection = await Sources.Primary.OpenConnectionAsync(Ct);
                await using var transaction = await connection.BeginTransactionAsync(Ct);
                await using var command = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", connection, transaction);
                command.Parameters.AddWithValue(key);
                return (bool)(await command.ExecuteScalarAsync(Ct))!;
            }));
            Assert.DoesNotContain(true, granted);

            await AppendAsync(Sources.Primary, "leader");
            await Eventually.UntilAsync(async () => await DeliveredAsync("leader") == 1, "the leader delivered the event", Ct);

            var index = dispatchers.IndexOf(leader);
            await stops[index].CancelAsync();
            await running[index];
            var standby = dispatchers[1 - index];
            await Eventually.UntilAsync(() => standby.IsLeader, "the standby took over from the stopped leader", Ct);
            await AppendAsync(Sources.Primary, "leader");
            await Eventually.UntilAsync(async () => await DeliveredAsync("leader") == 2, "the new leader delivered the next event", Ct);
        }
        finally
        {
            foreach (var stop in stops) await stop.CancelAsync();
            await Task.WhenAll(running);
            foreach (var stop in stops) stop.Dispose();
        }
    }

    [Fact]
    public async Task A_commit_through_pgbouncer_wakes_the_leader_listening_on_the_direct_session()
    {
        // Polling every ten minutes: an event delivered sooner was announced by NOTIFY. An event that was not yet
        // below the cluster's xmin horizon when the leader woke (other tests hold transactions) waits for the next
        // commit's notification, so commits go on until one is delivered.
        var dispatcher = new OutboxDispatcher(Sources.Primary, _store, new Recorder(_store, "wake"), new OutboxDispatcherOptions { PollInterval = TimeSpan.FromMinutes(10) });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var running = Task.Run(() => dispatcher.RunAsync(stop.Token), Ct);
        try
        {
            await Eventually.UntilAsync(() => dispatcher.IsLeader, "the dispatcher leads", Ct);
            await Eventually.UntilAsync(async () =>
            {
                if (await DeliveredAsync("wake") > 0) return true;
                await AppendAsync(Sources.Primary, "wake");
                await Task.Delay(200, Ct);
                return await DeliveredAsync("wake") > 0;
            }, "a notified commit was delivered well before the next poll", Ct);
        }
        finally
        {
            await stop.CancelAsync();
            await running;
        }
    }

    private static PostgresSettings WithoutDirect(PostgresSettings s) => new()
    {
        Connection = new()
        {
            Host = s.Connection.Host, Port = s.Connection.Port, Database = s.Connection.Database, User = s.Connection.User,
            Password = s.Connection.Password, Sslmode = s.Connection.Sslmode, ApplicationName = s.Connection.ApplicationName,
            CommandTimeout = s.Connection.CommandTimeout, Pooler = s.Connection.Pooler, Direct = null,
        },
        Pool = s.Pool,
        Performance = s.Performance,
        Replication = s.Replication,
    };
}
