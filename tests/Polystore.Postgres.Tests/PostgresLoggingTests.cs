using Npgsql;
using Microsoft.Extensions.Logging;
using Polystore.Core.Configuration;
using Polystore.Postgres.BulkUpsert;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>The logger factory handed to <see cref="PostgresDataSources.Create"/> reaches Npgsql and Polystore's own messages.</summary>
public sealed class PostgresLoggingTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static PostgresSettings Settings(string applicationName, bool prePing = false)
    {
        var c = TestServers.Postgres.Connection;
        return new PostgresSettings
        {
            Connection = new PostgresConnectionSettings
            {
                Host = c.Host, Port = c.Port, Database = c.Database, User = c.User, Password = c.Password, Sslmode = c.Sslmode, ApplicationName = applicationName, Pooler = c.Pooler,
            },
            Pool = new PostgresPoolSettings { MinSize = 0, MaxSize = 5, MaxOverflow = 0, PoolPrePing = prePing },
        };
    }

    [Fact]
    public async Task Npgsqls_own_log_lines_reach_the_factory_passed_to_Create()
    {
        var logs = new LogCapture();
        await using var sources = PostgresDataSources.Create(Settings(TestServers.UniqueName("log")), loggerFactory: logs);
        await using (var command = sources.Primary.CreateCommand("SELECT 1"))
            Assert.Equal(1, await command.ExecuteScalarAsync(Ct));

        var npgsql = logs.Logs.Where(l => l.Category.StartsWith("Npgsql", StringComparison.Ordinal)).ToList();
        Assert.Contains(npgsql, l => l.Category == "Npgsql.Connection" && l.Message.Contains("Opened connection", StringComparison.Ordinal));
        Assert.Contains(npgsql, l => l.Category == "Npgsql.Command" && l.Message.Contains("SELECT 1", StringComparison.Ordinal));
        // The password never reaches a log line.
        Assert.DoesNotContain(logs.Logs, l => l.Message.Contains(TestServers.Postgres.Connection.Password!, StringComparison.Ordinal));
        Assert.Same(logs, PostgresDataSources.LoggerFactoryOf(sources.Primary));
    }

    // Not run through PgBouncer: it kills the server process of a pooled connection, which through transaction pooling belongs to no client connection.
    [Trait("Requires", "DirectPostgres")]
    [Fact]
    public async Task A_failed_pre_ping_is_a_warning_and_the_open_is_retried()
    {
        var logs = new LogCapture();
        var app = TestServers.UniqueName("preping");
        await using var sources = PostgresDataSources.Create(Settings(app, prePing: true), loggerFactory: logs);
        int pid;
        await using (var first = await sources.OpenConnectionAsync(Ct)) pid = first.ProcessID;
        // The pooled connection's server process goes away while it sits in the pool.
        await using (var kill = db.Primary.CreateCommand($"SELECT pg_terminate_backend({pid})")) await kill.ExecuteScalarAsync(Ct);
        await using (var again = await sources.OpenConnectionAsync(Ct))
        {
            Assert.NotEqual(pid, again.ProcessID);
            await using var command = new NpgsqlCommand("SELECT 1", again);
            Assert.Equal(1, await command.ExecuteScalarAsync(Ct));
        }

        var warning = Assert.Single(logs.Logs, l => l.Category.StartsWith("Polystore", StringComparison.Ordinal));
        Assert.Equal(1001, warning.EventId.Id);
        Assert.Equal((LogLevel.Warning, "PrePingFailed", "Polystore.Postgres.PostgresDataSources"), (warning.Level, warning.EventId.Name, warning.Category));
        Assert.NotNull(warning.Exception);
    }

    [Fact]
    public async Task A_bulk_upsert_logs_through_the_data_sources_factory_unless_its_options_name_one()
    {
        // The MERGE of a batch meets a key another transaction inserted meanwhile and falls back to ON CONFLICT: a warning.
        var logs = new LogCapture();
        await using var sources = PostgresDataSources.Create(Settings(TestServers.UniqueName("upsertlog")), loggerFactory: logs);
        var table = $"{db.Schema}.merge_{Guid.NewGuid():N}"[..(db.Schema.Length + 15)];
        await db.ExecAsync($"CREATE TABLE {table} (email text PRIMARY KEY, name text NOT NULL)");
        var upsert = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).OnConflict("email").Build();

        await using var blocker = await db.Primary.OpenConnectionAsync(Ct);
        await using var blocking = await blocker.BeginTransactionAsync(Ct);
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} VALUES ('u0@example.com', 'other')", blocker, blocking)) await insert.ExecuteNonQueryAsync(Ct);
        // The MERGE waits on the uncommitted key; committing it makes the MERGE's insert a unique violation.
        var running = upsert.ExecuteAsync(sources.Primary, [new UserRow("u0@example.com", "mine", 0), new UserRow("u1@example.com", "mine", 0)], cancellationToken: Ct);
        await WaitUntilBlockedAsync(table);
        await blocking.CommitAsync(Ct);
        var result = await running;

        Assert.Equal((1L, 1L), (result.Inserted, result.Updated));
        var fallback = Assert.Single(logs.Logs, l => l.Category.StartsWith("Polystore", StringComparison.Ordinal));
        Assert.Equal((1101, "BulkUpsertMergeFallback"), (fallback.EventId.Id, fallback.EventId.Name));
        Assert.Equal((LogLevel.Warning, "Polystore.Postgres.BulkUpsert"), (fallback.Level, fallback.Category));
        Assert.Contains(table, fallback.Message, StringComparison.Ordinal);

        // Options that name a factory win over the data source's.
        var own = new LogCapture();
        await using var blocker2 = await db.Primary.OpenConnectionAsync(Ct);
        await using var blocking2 = await blocker2.BeginTransactionAsync(Ct);
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} VALUES ('u2@example.com', 'other')", blocker2, blocking2)) await insert.ExecuteNonQueryAsync(Ct);
        var second = upsert.ExecuteAsync(sources.Primary, [new UserRow("u2@example.com", "mine", 0)], new PostgresBulkUpsertOptions { LoggerFactory = own }, Ct);
        await WaitUntilBlockedAsync(table);
        await blocking2.CommitAsync(Ct);
        await second;
        Assert.Equal(1101, Assert.Single(own.Logs).EventId.Id);
        Assert.Single(logs.Logs, l => l.Category.StartsWith("Polystore", StringComparison.Ordinal));
    }

    // Polls pg_stat_activity until a session waits on a lock in a statement on the table (named by its unique part, as the SQL quotes it).
    private async Task WaitUntilBlockedAsync(string table)
    {
        table = table[(table.IndexOf('.', StringComparison.Ordinal) + 1)..];
        for (var i = 0; i < 600; i++)
        {
            await using var command = db.Primary.CreateCommand(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'");
            command.Parameters.AddWithValue(table);
            if ((long)(await command.ExecuteScalarAsync(Ct))! > 0) return;
            await Task.Delay(20, Ct);
        }
        Assert.Fail("the upsert never waited on the uncommitted key");
    }
}
