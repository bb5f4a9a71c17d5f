using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres.BulkUpsert;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// PostgreSQL through the private PgBouncer in transaction pooling mode (<c>./run up --pgbouncer</c>, which
/// <c>./run test</c> starts): each transaction may run on a different server connection, so nothing Polystore does
/// may rely on a session, and nothing it sets may outlive its transaction.
/// </summary>
public sealed class PgBouncerTests : IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly string _schema = TestServers.UniqueName("pgb");
    private PostgresDataSources? _sources;

    private PostgresDataSources Sources => _sources ??= PostgresDataSources.Create(Settings());

    internal static PostgresSettings Settings()
    {
        var settings = TestServers.PgBouncer;
        if (settings is null) Assert.Skip("PgBouncer is not running: start it with ./run up --pgbouncer (./run test does)");
        return settings;
    }

    public async ValueTask InitializeAsync()
    {
        if (TestServers.PgBouncer is null) return;
        await ExecAsync($"CREATE SCHEMA {_schema}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_sources is null) return;
        await ExecAsync($"DROP SCHEMA IF EXISTS {_schema} CASCADE");
        await _sources.DisposeAsync();
    }

    private async Task ExecAsync(string sql)
    {
        await using var command = Sources.Primary.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(Ct);
    }

    [Fact]
    public async Task Statements_are_never_prepared_through_pgbouncer()
    {
        var b = PostgresDriverSettings.Build(Settings());
        Assert.Equal((0, true, null), (b.MaxAutoPrepare, b.NoResetOnClose, b.Options));

        // With automatic preparation on, the third run of a statement would prepare it on one server connection and
        // a later run on another would fail ("prepared statement ... does not exist"); every server connection these
        // land on has nothing prepared.
        await Parallel.ForEachAsync(Enumerable.Range(0, 8), new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = Ct }, async (_, ct) =>
        {
            for (var n = 0; n < 25; n++)
            {
                await using var command = Sources.Primary.CreateCommand("SELECT count(*) FROM pg_prepared_statements WHERE $1 >= 0");
                command.Parameters.AddWithValue(n);
                Assert.Equal(0L, (long)(await command.ExecuteScalarAsync(ct))!);
            }
        });
    }

    [Fact]
    public void Transaction_pooling_with_statement_caching_on_is_refused_naming_the_setting()
    {
        var dir = Directory.CreateTempSubdirectory("polystore-pgb-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "postgresql.yaml"), """
                connection:
                  host: 127.0.0.1
                  port: 6432
                  pooler: pgbouncer-transaction
                  direct:
                    host: db.internal
                    port: 5432
                    password: direct-secret-value
                performance:
                  statement_cache_size: 1024
                """);
            var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(dir.FullName, new Dictionary<string, string>()));
            Assert.Contains("performance.statement_cache_size", e.Message, StringComparison.Ordinal);
            Assert.Contains("pgbouncer-transaction", e.Message, StringComparison.Ordinal);

            File.WriteAllText(Path.Combine(dir.FullName, "postgresql.yaml"), """
                connection:
                  host: 127.0.0.1
                  port: 6432
                  pooler: pgbouncer-transaction
                  direct:
                    host: ""
                    port: 70000
                performance:
                  statement_cache_size: 0
                """);
            e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(dir.FullName, new Dictionary<string, string>()));
            Assert.Contains("connection.direct.host", e.Message, StringComparison.Ordinal);
            Assert.Contains("connection.direct.port", e.Message, StringComparison.Ordinal);

            File.WriteAllText(Path.Combine(dir.FullName, "postgresql.yaml"), """
                connection:
                  host: 127.0.0.1
                  port: 6432
                  pooler: pgbouncer-transaction
                  direct:
                    host: db.internal
                    password: direct-secret-value
                performance:
                  statement_cache_size: 0
                """);
            var config = PolystoreConfig.Load(dir.FullName, new Dictionary<string, string>());
            var shown = config.Describe().Single(entry => entry.Key == "connection.direct.password");
            Assert.DoesNotContain("direct-secret-value", shown.Value, StringComparison.Ordinal);
            Assert.Contains("direct-secret-value", config.Secrets());
            Assert.Equal("pgbouncer-transaction", config.Describe().Single(entry => entry.Key == "connection.pooler").Value);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Sessions_go_to_the_direct_server_and_none_exist_without_it()
    {
        var settings = Settings();
        Assert.NotNull(Sources.Session);
        Assert.NotSame(Sources.Primary, Sources.Session);
        Assert.Same(Sources.Session, PostgresDataSources.SessionSourceOf(Sources.Primary));
        await using (var session = await Sources.Session!.OpenConnectionAsync(Ct))
            Assert.Equal(settings.Connection.Direct!.Port, session.Port);

        await using var withoutDirect = PostgresDataSources.Create(WithoutDirect(settings));
        Assert.Null(withoutDirect.Session);
        Assert.Null(PostgresDataSources.SessionSourceOf(withoutDirect.Primary));

        // Straight to the server, the pooled connections keep their sessions.
        await using var direct = PostgresDataSources.Create(new PostgresSettings { Connection = new() { Host = settings.Connection.Direct.Host, Port = settings.Connection.Direct.Port } });
        Assert.Same(direct.Primary, direct.Session);
    }

    [Fact]
    public async Task Connections_through_pgbouncer_log_in_with_jit_off_and_send_no_options()
    {
        // PgBouncer 1.18 refuses the `options` startup parameter (where -c jit=off would go): the private PgBouncer
        // switches jit off per server connection (connect_query), and the direct server gets it as an option.
        await using (var command = Sources.Primary.CreateCommand("SELECT current_setting('jit'), current_setting('application_name')"))
        await using (var reader = await command.ExecuteReaderAsync(Ct))
        {
            Assert.True(await reader.ReadAsync(Ct));
            Assert.Equal(("off", Settings().Connection.ApplicationName), (reader.GetString(0), reader.GetString(1)));
        }
        await using var session = Sources.Session!.CreateCommand("SELECT current_setting('jit')");
        Assert.Equal("off", await session.ExecuteScalarAsync(Ct));
    }

    [Fact]
    public async Task Bulk_upserts_stage_in_temp_tables_that_end_with_their_transaction()
    {
        var table = $"{_schema}.items";
        await ExecAsync($"CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, score int NOT NULL DEFAULT 0, region text)");
        var upsert = PostgresBulkUpsert.Into<UserRow>(table)
            .Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).Column("region", u => u.Region)
            .OnConflict("email").Build();
        // UnnestThreshold 0: every batch goes COPY -> temp table -> MERGE/INSERT, in atomic, chunked and parallel modes.
        var modes = new[] { PostgresBulkUpsertMode.Atomic, PostgresBulkUpsertMode.Chunked, PostgresBulkUpsertMode.Parallel };
        await Parallel.ForEachAsync(Enumerable.Range(0, 6), new ParallelOptions { MaxDegreeOfParallelism = 6, CancellationToken = Ct }, async (i, ct) =>
        {
            var options = new PostgresBulkUpsertOptions { UnnestThreshold = 0, Mode = modes[i % 3], ChunkSize = 300, Parallelism = 2 };
            var rows = Enumerable.Range(i * 1000, 1000).Select(n => new UserRow($"u{n}@example.com", $"n{n}", n % 100, null)).ToList();
            var first = await upsert.ExecuteAsync(Sources.Primary, rows, options, ct);
            Assert.Equal((1000L, 0L), (first.Inserted, first.Updated));
            var again = await upsert.ExecuteAsync(Sources.Primary, rows.Select(r => r with { Name = "m" }), options, ct);
            Assert.Equal((0L, 1000L), (again.Inserted, again.Updated));
        });
        await using (var count = Sources.Primary.CreateCommand($"SELECT count(*) FILTER (WHERE name = 'm') FROM {table}"))
            Assert.Equal(6000L, await count.ExecuteScalarAsync(Ct));
        // No staging table outlived its transaction on any server connection (the catalog shows every session's).
        await using var staging = Sources.Session!.CreateCommand(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'pg_temp%' AND c.relname LIKE 'polystore_upsert_%'");
        Assert.Equal(0L, await staging.ExecuteScalarAsync(Ct));
    }

    [Fact]
    public async Task Planner_settings_set_for_a_transaction_are_not_seen_by_the_next_client()
    {
        var table = $"{_schema}.steered";
        await ExecAsync($"CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, score int NOT NULL DEFAULT 0, region text)");
        var upsert = PostgresBulkUpsert.Into<UserRow>(table)
            .Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).Column("region", u => u.Region)
            .OnConflict("email").Build();
        var options = new PostgresBulkUpsertOptions { UnnestThreshold = 0 };
        // A batch as large as the table raises work_mem for its MERGE; a small one into a large table turns hash and
        // merge joins off: both transaction-local (set_config(..., true)).
        await upsert.ExecuteAsync(Sources.Primary, Enumerable.Range(0, 4000).Select(n => new UserRow($"u{n}@example.com", "a", 1, null)), options, Ct);
        await ExecAsync($"ANALYZE {table}");
        await upsert.ExecuteAsync(Sources.Primary, Enumerable.Range(0, 10).Select(n => new UserRow($"u{n}@example.com", "b", 2, null)), options, Ct);

        // The server's own values, from a fresh session.
        string expected;
        await using (var baseline = Sources.Session!.CreateCommand(
            "SELECT concat_ws('|', current_setting('work_mem'), current_setting('enable_hashjoin'), current_setting('enable_mergejoin'), current_setting('statement_timeout'), current_setting('jit'), coalesce(current_setting('polystore.work_mem', true), ''))"))
            expected = (string)(await baseline.ExecuteScalarAsync(Ct))!;

        // Many pooled clients at once, so their transactions cover many of PgBouncer's server connections, the one the
        // upserts ran on (PgBouncer hands out the most recently used first) among them.
        const int clients = 20;
        var arrived = 0;
        var allIn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var seen = await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            await using var connection = await Sources.Primary.OpenConnectionAsync(Ct);
            await using var transaction = await connection.BeginTransactionAsync(Ct);
            await using var command = new NpgsqlCommand(
                "SELECT concat_ws('|', current_setting('work_mem'), current_setting('enable_hashjoin'), current_setting('enable_mergejoin'), current_setting('statement_timeout'), current_setting('jit'), coalesce(current_setting('polystore.work_mem', true), ''))",
                connection, transaction);
            var value = (string)(await command.ExecuteScalarAsync(Ct))!;
            if (Interlocked.Increment(ref arrived) == clients) allIn.TrySetResult();
            // Hold the server connection until every client has one (or, when other tests hold some, briefly).
            try { await allIn.Task.WaitAsync(TimeSpan.FromSeconds(3), Ct); } catch (TimeoutException) { }
            await transaction.CommitAsync(Ct);
            return value;
        }));
        Assert.All(seen, value => Assert.Equal(expected, value));
        Assert.StartsWith("4MB|on|on|", expected, StringComparison.Ordinal);
    }

    internal static PostgresSettings WithoutDirect(PostgresSettings s) => new()
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
