using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres.BulkUpsert;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

public sealed class PoolExhaustionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static PostgresSettings SmallPool(int size, int overflow, int timeout)
    {
        var c = TestServers.Postgres.Connection;
        return new PostgresSettings
        {
            Connection = new() { Host = c.Host, Port = c.Port, Database = c.Database, User = c.User, Password = c.Password, Sslmode = PostgresSslMode.Disable, ApplicationName = TestServers.UniqueName("pool"), Pooler = c.Pooler },
            Pool = new() { MinSize = 0, MaxSize = size, MaxOverflow = overflow, PoolTimeout = timeout },
        };
    }

    [Fact]
    public async Task Holding_every_connection_gives_a_clear_error_naming_pool_size_and_timeout()
    {
        await using var sources = PostgresDataSources.Create(SmallPool(2, 1, 1));
        var held = new List<NpgsqlConnection>();
        for (var i = 0; i < 3; i++) held.Add(await SlowConnect.OpenAsync(sources, Ct));
        try
        {
            var e = await Assert.ThrowsAsync<PostgresPoolExhaustedException>(() => sources.OpenConnectionAsync(Ct).AsTask());
            Assert.Equal((3, 1), (e.MaxPoolSize, e.TimeoutSeconds));
            Assert.Contains("all 3 connections (pool.max_size + pool.max_overflow)", e.Message, StringComparison.Ordinal);
            Assert.Contains("1 s wait (pool.pool_timeout)", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(TestServers.Postgres.Connection.Password!, e.Message, StringComparison.Ordinal);
            Assert.IsType<TimeoutException>(e.InnerException?.InnerException ?? e.InnerException, exactMatch: false);

            // The library's own entry points report it the same way.
            var upsert = PostgresBulkUpsert.Into<(int, string)>("pg_catalog.pg_class").Column("relname", r => r.Item2).OnConflict("relname").Build();
            await Assert.ThrowsAsync<PostgresPoolExhaustedException>(() => upsert.ExecuteAsync(sources.Primary, [(1, "x")], cancellationToken: Ct));

            // 64 callers at once all get the same clear error, none hangs.
            var results = await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
            {
                try { await using var c = await sources.OpenConnectionAsync(Ct); return "opened"; }
                catch (PostgresPoolExhaustedException) { return "exhausted"; }
            }));
            Assert.All(results, r => Assert.Equal("exhausted", r));
        }
        finally
        {
            foreach (var c in held) await c.DisposeAsync();
        }
        // Released connections are handed out again.
        await using var again = await sources.OpenConnectionAsync(Ct);
        Assert.Equal(System.Data.ConnectionState.Open, again.State);
    }

    [Fact]
    public async Task An_exhausted_pool_behind_a_multi_host_data_source_gives_the_same_clear_error()
    {
        // connection.hosts makes a multi-host data source: Npgsql reports the full pool of its host inside
        // "Unable to connect to a suitable host" (an AggregateException of each host's failure).
        var small = SmallPool(1, 0, 1);
        var c = small.Connection;
        var settings = new PostgresSettings
        {
            Connection = new()
            {
                Hosts = [$"{c.Host}:{c.Port}"], TargetSessionAttributes = PostgresTargetSession.Primary,
                Database = c.Database, User = c.User, Password = c.Password, Sslmode = c.Sslmode, ApplicationName = c.ApplicationName, Pooler = c.Pooler,
            },
            Pool = small.Pool,
        };
        await using var sources = PostgresDataSources.Create(settings);
        var held = await SlowConnect.OpenAsync(sources, Ct);
        try
        {
            var e = await Assert.ThrowsAsync<PostgresPoolExhaustedException>(() => sources.OpenConnectionAsync(Ct).AsTask());
            Assert.Equal((1, 1), (e.MaxPoolSize, e.TimeoutSeconds));
            Assert.DoesNotContain(c.Password!, e.Message, StringComparison.Ordinal);
            // Npgsql's own report stays inside, for the details.
            Assert.IsType<NpgsqlException>(e.InnerException, exactMatch: false);
        }
        finally
        {
            await held.DisposeAsync();
        }
        await using var again = await sources.OpenConnectionAsync(Ct);
        Assert.Equal(System.Data.ConnectionState.Open, again.State);
    }

    [Fact]
    public async Task Parallel_upsert_with_more_connections_than_the_pool_fails_before_writing_anything()
    {
        // Every lane's connection is opened before the first row is read, so the error comes with nothing written.
        await using var sources = PostgresDataSources.Create(SmallPool(2, 0, 1));
        // The pool's two connections are made first, and idle when the upsert asks: it must find the pool full, not
        // meet the 1 s connect timeout on a loaded machine.
        var warm = new[] { await SlowConnect.OpenAsync(sources, Ct), await SlowConnect.OpenAsync(sources, Ct) };
        foreach (var c in warm) await c.DisposeAsync();
        // The table is made, counted and dropped through a pool of its own: the small pool's 1 s connect timeout is
        // for the upsert, and on a loaded machine a new connection can take longer.
        await using var setup = PostgresDataSources.Create(TestServers.Postgres);
        var table = TestServers.UniqueName("pool_upsert");
        await using (var create = setup.Primary.CreateCommand($"CREATE TABLE {table} (email text PRIMARY KEY)"))
            await create.ExecuteNonQueryAsync(Ct);
        try
        {
            var upsert = PostgresBulkUpsert.Into<string>(table).Column("email", e => e).OnConflict("email").Build();
            var rows = Enumerable.Range(0, 50_000).Select(i => $"u{i}@example.com");
            var options = new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel, Parallelism = 4, ChunkSize = 1_000 };
            var e = await Assert.ThrowsAsync<PostgresPoolExhaustedException>(() => upsert.ExecuteAsync(sources.Primary, rows, options, Ct));
            Assert.Equal(2, e.MaxPoolSize);
            await using var count = setup.Primary.CreateCommand($"SELECT count(*) FROM {table}");
            Assert.Equal(0L, (long)(await count.ExecuteScalarAsync(Ct))!);
        }
        finally
        {
            await using var drop = setup.Primary.CreateCommand($"DROP TABLE {table}");
            await drop.ExecuteNonQueryAsync(Ct);
        }
    }

    [Fact]
    public async Task Sixty_four_callers_share_a_pool_of_four_without_errors_when_each_returns_its_connection()
    {
        await using var sources = PostgresDataSources.Create(SmallPool(4, 0, 30));
        var sum = await Task.WhenAll(Enumerable.Range(0, 64).Select(async i =>
        {
            await using var c = await sources.OpenConnectionAsync(Ct);
            await using var cmd = new NpgsqlCommand("SELECT $1::int + pg_backend_pid() * 0", c);
            cmd.Parameters.AddWithValue(i);
            return (int)(await cmd.ExecuteScalarAsync(Ct))!;
        }));
        Assert.Equal(Enumerable.Range(0, 64).Sum(), sum.Sum());
    }
}
