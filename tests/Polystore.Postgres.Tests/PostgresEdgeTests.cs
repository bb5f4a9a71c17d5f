using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres.Querying;
using Polystore.Postgres.Schema;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>Data sources, identifiers, rankings and filters at their edges (each test reproduced a bug, but the last).</summary>
public sealed class PostgresEdgeTests(SchemaFixture db) : IClassFixture<SchemaFixture>, IDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly ActivityCapture _spans = new(PostgresTelemetry.ActivitySourceName);

    public void Dispose() => _spans.Dispose();

    private static PostgresSettings SingleHost(string app, int maxSize = 5, bool prePing = false, int timeout = 30)
    {
        var c = TestServers.Postgres.Connection;
        return new PostgresSettings
        {
            Connection = new PostgresConnectionSettings
            {
                Host = c.Host, Port = c.Port, Database = c.Database, User = c.User, Password = c.Password, Sslmode = c.Sslmode,
                ApplicationName = app, Pooler = c.Pooler,
            },
            Pool = new PostgresPoolSettings { MinSize = 0, MaxSize = maxSize, MaxOverflow = 0, PoolPrePing = prePing, PoolTimeout = timeout },
        };
    }

    /// <summary>Cancels a token the moment Npgsql logs "Opened connection to" (the end of OpenConnectionAsync, before the pre-ping).</summary>
    private sealed class CancelOnOpen(CancellationTokenSource cts) : ILoggerFactory
    {
        public volatile bool Armed;
        public void Fire() => cts.Cancel();
        public ILogger CreateLogger(string categoryName) => new L(this);
        public void AddProvider(ILoggerProvider provider) { }
        public void Dispose() { }

        private sealed class L(CancelOnOpen owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (owner.Armed && formatter(state, exception).StartsWith("Opened connection to", StringComparison.Ordinal)) owner.Fire();
            }
        }
    }

    // A cancellation that lands after the pooled connection is handed out, before or during the pre-ping, must give it
    // back to the pool: the caller never gets it, so nobody else can.
    [Fact]
    public async Task A_pre_ping_cancelled_after_checkout_gives_the_connection_back()
    {
        using var cts = new CancellationTokenSource();
        var logs = new CancelOnOpen(cts);
        await using var sources = PostgresDataSources.Create(SingleHost(TestServers.UniqueName("leak"), maxSize: 1, prePing: true, timeout: 2), loggerFactory: logs);

        logs.Armed = true;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sources.OpenConnectionAsync(cts.Token).AsTask());
        logs.Armed = false;
        GC.Collect();
        GC.WaitForPendingFinalizers();

        // The caller never got the connection, so it cannot dispose it. The pool (size 1) should have it back.
        await using var again = await sources.OpenConnectionAsync(Ct);
        Assert.Equal(System.Data.ConnectionState.Open, again.State);
    }

    [Fact]
    public void A_name_with_a_trailing_newline_is_not_a_plain_identifier()
    {
        // A .NET regex $ matches before a final newline: "name\n" once passed, and CREATE SCHEMA made that name.
        var name = TestServers.UniqueName("nl") + "\n";
        Assert.False(PostgresIdentifier.IsPlain(name));
        Assert.Throws<ArgumentException>(() => PostgresIdentifier.QuotePlain(name, "schema"));
    }

    [Fact]
    public async Task A_descending_top_n_ranks_rows_without_a_score_last()
    {
        var table = $"{db.Schema}.nulls_{Guid.NewGuid():N}"[..(db.Schema.Length + 15)];
        await db.ExecAsync($"CREATE TABLE {table} (id int PRIMARY KEY, score int); INSERT INTO {table} VALUES (1, 10), (2, 5), (3, NULL)");
        var top = await Ranking.From(table).Select("id", "score").OrderBy("score", SortDirection.Descending).Top(1).Build()
            .ExecuteAsync(db.Primary, r => r.GetInt32(0), Ct);
        Assert.Equal([1], top.Select(t => t.Row));
    }

    // Any C# integer literal is an int; int2 = int4 is valid SQL, so a filter must not refuse it.
    [Fact]
    public async Task A_filter_compares_a_smallint_column_with_an_int()
    {
        var table = $"{db.Schema}.small_{Guid.NewGuid():N}"[..(db.Schema.Length + 15)];
        await db.ExecAsync($"CREATE TABLE {table} (id int PRIMARY KEY, kind smallint NOT NULL, score int NOT NULL); INSERT INTO {table} VALUES (1, 1, 10), (2, 2, 5)");
        var rows = await Ranking.From(table).Select("id").OrderBy("score").Where(Filter.Equal("kind", 1)).Build()
            .ExecuteAsync(db.Primary, r => r.GetInt32(0), Ct);
        Assert.Single(rows);
    }

    // "col = NULL" matches nothing: DBNull gets the same clear error as null (use IsNull).
    [Fact]
    public async Task A_filter_equal_to_DBNull_is_refused_like_null()
    {
        var table = $"{db.Schema}.dbnull_{Guid.NewGuid():N}"[..(db.Schema.Length + 16)];
        await db.ExecAsync($"CREATE TABLE {table} (id int PRIMARY KEY, region text, score int NOT NULL); INSERT INTO {table} VALUES (1, NULL, 1)");
        var e = await Record.ExceptionAsync(() => Ranking.From(table).Select("id").OrderBy("score").Where(Filter.Equal("region", DBNull.Value)).Build()
            .ExecuteAsync(db.Primary, r => r.GetInt32(0), Ct));
        Assert.IsType<ArgumentException>(e);
    }

    // A string parameter is text: on a citext column "col = $1" would resolve to text = text, a case-sensitive match on
    // a case-insensitive column; the parameter is cast to the column's type.
    // Not through PgBouncer: it refuses the search_path startup parameter, which puts the extension's operators in reach.
    [Fact]
    [Trait("Requires", "DirectPostgres")]
    public async Task A_filter_on_a_citext_column_compares_as_citext()
    {
        var schema = TestServers.UniqueName("cit");
        await db.ExecAsync($"CREATE SCHEMA {schema}; CREATE EXTENSION citext SCHEMA {schema}; CREATE TABLE {schema}.people (id int PRIMARY KEY, email {schema}.citext NOT NULL, score int NOT NULL); INSERT INTO {schema}.people VALUES (1, 'Foo@Example.com', 1)");
        try
        {
            var b = new NpgsqlConnectionStringBuilder(PostgresDriverSettings.Build(SingleHost(TestServers.UniqueName("cit"))).ConnectionString) { SearchPath = $"{schema},public" };
            await using var source = NpgsqlDataSource.Create(b);
            await using (var check = source.CreateCommand($"SELECT count(*) FROM {schema}.people WHERE email = 'foo@example.com'"))
                Assert.Equal(1L, await check.ExecuteScalarAsync(Ct)); // citext semantics with a literal
            var rows = await Ranking.From($"{schema}.people").Select("id").OrderBy("score").Where(Filter.Equal("email", "foo@example.com")).Build()
                .ExecuteAsync(source, r => r.GetInt32(0), Ct);
            Assert.Single(rows);
        }
        finally
        {
            await db.ExecAsync($"DROP SCHEMA {schema} CASCADE");
        }
    }

    // Round-robin load balancing is for reads: a write that started at a hung replica would wait out its whole connect
    // timeout (pool_timeout) there before trying the primary.
    [Fact]
    public async Task Writes_never_start_at_a_replica_under_round_robin()
    {
        using var blackHole = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        blackHole.Start();
        var accepted = 0;
        var held = new List<System.Net.Sockets.TcpClient>();
        using var stop = new CancellationTokenSource();
        var acceptLoop = Task.Run(async () =>
        {
            try { while (true) { held.Add(await blackHole.AcceptTcpClientAsync(stop.Token)); Interlocked.Increment(ref accepted); } }
            catch (OperationCanceledException) { }
        }, Ct);
        var baseSettings = SingleHost(TestServers.UniqueName("bhw"), maxSize: 4, timeout: 3);
        var settings = new PostgresSettings
        {
            Connection = baseSettings.Connection,
            Pool = baseSettings.Pool,
            Replication = new PostgresReplicationSettings { ReadReplicas = [new PostgresHost { Host = "127.0.0.1", Port = ((System.Net.IPEndPoint)blackHole.LocalEndpoint).Port }] },
        };
        await using var sources = PostgresDataSources.Create(settings);
        await using (var w1 = await sources.OpenConnectionAsync(Ct))
        await using (var w2 = await sources.OpenConnectionAsync(Ct))
            Assert.Equal((System.Data.ConnectionState.Open, System.Data.ConnectionState.Open), (w1.State, w2.State));
        await stop.CancelAsync();
        await acceptLoop;
        foreach (var c in held) c.Dispose();
        // A write never needs the replica: the black hole should never have been connected to.
        Assert.Equal(0, Volatile.Read(ref accepted));
    }

    // A refused replica (nothing listening): reads fall back to the primary; ping reports it down, without throwing.
    [Fact]
    public async Task Refused_replica_falls_back_and_ping_reports_it()
    {
        var baseSettings = SingleHost(TestServers.UniqueName("refused"));
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var settings = new PostgresSettings
        {
            Connection = baseSettings.Connection,
            Pool = baseSettings.Pool,
            Replication = new PostgresReplicationSettings { ReadReplicas = [new PostgresHost { Host = "127.0.0.1", Port = port }] },
        };
        await using var sources = PostgresDataSources.Create(settings);
        for (var i = 0; i < 3; i++)
        {
            await using var c = await sources.OpenReadConnectionAsync(Ct);
            await using var cmd = new NpgsqlCommand("SELECT pg_is_in_recovery()", c);
            Assert.False((bool)(await cmd.ExecuteScalarAsync(Ct))!);
        }
        var pings = await PostgresPing.PingAsync(sources, Ct);
        Assert.True(pings[0].Reachable);
        Assert.False(pings[1].Reachable);
    }
}
