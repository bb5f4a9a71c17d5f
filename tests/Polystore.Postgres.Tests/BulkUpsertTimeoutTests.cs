using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres.BulkUpsert;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// Bulk upserts run under their own statement timeout (<see cref="PostgresBulkUpsertOptions.CommandTimeout"/>, no
/// limit by default), not the connection's command_timeout; a timeout names the setting to raise. A statement is made
/// long by a lock another session holds, released once the upsert has waited past the connection's 1-s timeout.
/// </summary>
// Not run through PgBouncer: finds the blocking session by NpgsqlConnection.ProcessID (PgBouncer's own cancel key there, not a server pid) and sets statement_timeout as a startup option, which PgBouncer 1.18 refuses.
[Trait("Requires", "DirectPostgres")]
public sealed class BulkUpsertTimeoutTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> Paths => ["atomic", "atomic-copy", "chunked", "chunked-copy", "parallel", "caller-transaction", "caller-transaction-copy"];

    private static PostgresBulkUpsertOptions Options(string path, TimeSpan? timeout = null)
    {
        var options = path switch
        {
            "chunked" => new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 500 },
            "chunked-copy" => new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 500, UnnestThreshold = 0 },
            "parallel" => new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel, ChunkSize = 500, Parallelism = 2 },
            _ when path.EndsWith("-copy", StringComparison.Ordinal) => new PostgresBulkUpsertOptions { UnnestThreshold = 0 },
            _ => new PostgresBulkUpsertOptions(),
        };
        return timeout is { } t ? options with { CommandTimeout = t } : options;
    }

    /// <summary>
    /// The private server with command_timeout = 1 s, one host, with a connection opened once: the first one of a data
    /// source reads the server's types, and a stalled machine can stretch that past the short timeouts under test.
    /// </summary>
    private static async Task<PostgresDataSources> OneSecondCommandTimeoutAsync(Action<NpgsqlDataSourceBuilder>? configure = null)
    {
        var c = TestServers.Postgres.Connection;
        var sources = PostgresDataSources.Create(new PostgresSettings
        {
            Connection = new() { Host = c.Host, Port = c.Port, Database = c.Database, User = c.User, Password = c.Password, Sslmode = PostgresSslMode.Disable, CommandTimeout = 1 },
            Pool = new() { MaxSize = 10 },
        }, configure);
        try
        {
            await using var first = await SlowConnect.OpenAsync(sources, Ct);
            return sources;
        }
        catch
        {
            await sources.DisposeAsync();
            throw;
        }
    }

    private async Task<string> CreateUsersAsync()
    {
        var table = $"{db.Schema}.users_{Guid.NewGuid():N}"[..(db.Schema.Length + 15)];
        await db.ExecAsync($"CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL)");
        return table;
    }

    private static PostgresBulkUpsertDefinition<UserRow> Upsert(string table) =>
        PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).OnConflict("email").Build();

    private static IEnumerable<UserRow> Users(int count, string name = "n") =>
        Enumerable.Range(0, count).Select(i => new UserRow($"u{i}@example.com", $"{name}{i}", 0));

    /// <summary>Runs the upsert on <paramref name="sources"/> the way <paramref name="path"/> says (through a data source, or in a transaction of the caller's).</summary>
    private static async Task<PostgresBulkUpsertResult> RunAsync(string path, PostgresDataSources sources, string table, IEnumerable<UserRow> rows, PostgresBulkUpsertOptions options)
    {
        if (!path.StartsWith("caller-transaction", StringComparison.Ordinal)) return await Upsert(table).ExecuteAsync(sources.Primary, rows, options, Ct);
        await using var connection = await sources.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        var result = await Upsert(table).ExecuteAsync(connection, transaction, rows, options, Ct);
        await transaction.CommitAsync(Ct);
        return result;
    }

    /// <summary>Waits until a session blocked by <paramref name="blocker"/> has waited longer than <paramref name="seconds"/>.</summary>
    private async Task WaitBlockedLongerThanAsync(NpgsqlConnection blocker, int seconds, Task run) =>
        await Poll.UntilAsync(async () => run.IsCompleted || await db.ScalarAsync<bool>(
            $"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE {blocker.ProcessID} = ANY (pg_catalog.pg_blocking_pids(pid)) AND now() - query_start > interval '{seconds} s')"),
            TimeSpan.FromSeconds(60), "no upsert statement waited on the lock");

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task A_statement_longer_than_the_connections_command_timeout_completes(string path)
    {
        var table = await CreateUsersAsync();
        await using var sources = await OneSecondCommandTimeoutAsync();
        await using var blocker = await db.Primary.OpenConnectionAsync(Ct);
        await using var hold = await blocker.BeginTransactionAsync(Ct);
        await using (var lockTable = new NpgsqlCommand($"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", blocker, hold))
            await lockTable.ExecuteNonQueryAsync(Ct);
        var run = RunAsync(path, sources, table, Users(2_000), Options(path));
        await WaitBlockedLongerThanAsync(blocker, 2, run);
        Assert.False(run.IsCompleted, $"the upsert stopped while blocked: {run.Exception?.InnerException?.Message}");
        await hold.CommitAsync(Ct);
        var result = await run;
        Assert.Equal(2_000L, result.Inserted);
        Assert.Equal(2_000L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task A_statement_longer_than_CommandTimeout_fails_naming_it_with_the_rows_committed(string path)
    {
        // Chunk 3 updates a row another session holds locked; chunks 1 and 2 commit first in chunked mode.
        var table = await CreateUsersAsync();
        await db.ExecAsync($"INSERT INTO {table} (email, name) VALUES ('u1200@example.com', 'before')");
        await using var sources = await OneSecondCommandTimeoutAsync();
        await using var blocker = await db.Primary.OpenConnectionAsync(Ct);
        await using var hold = await blocker.BeginTransactionAsync(Ct);
        await using (var lockRow = new NpgsqlCommand($"SELECT 1 FROM {table} WHERE email = 'u1200@example.com' FOR UPDATE", blocker, hold))
            await lockRow.ExecuteNonQueryAsync(Ct);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => RunAsync(path, sources, table, Users(2_000, "new"), Options(path, TimeSpan.FromSeconds(1))));
        await hold.RollbackAsync(Ct);
        Assert.Contains("PostgresBulkUpsertOptions.CommandTimeout (1 s)", e.Message, StringComparison.Ordinal);
        Assert.IsType<TimeoutException>(Assert.IsAssignableFrom<NpgsqlException>(e.InnerException).InnerException);
        Assert.Equal(e.RowsCommitted, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'new%'"));
        if (path.StartsWith("chunked", StringComparison.Ordinal)) Assert.Equal(1_000, e.RowsCommitted);
    }

    [Theory]
    [InlineData("atomic")]
    [InlineData("chunked-copy")]
    public async Task The_servers_statement_timeout_is_named_when_it_ends_a_statement(string path)
    {
        var table = await CreateUsersAsync();
        await using var sources = await OneSecondCommandTimeoutAsync(b => b.ConnectionStringBuilder.Options = "-c statement_timeout=500");
        await using var blocker = await db.Primary.OpenConnectionAsync(Ct);
        await using var hold = await blocker.BeginTransactionAsync(Ct);
        await using (var lockTable = new NpgsqlCommand($"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", blocker, hold))
            await lockTable.ExecuteNonQueryAsync(Ct);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => RunAsync(path, sources, table, Users(2_000), Options(path)));
        await hold.RollbackAsync(Ct);
        Assert.Contains("statement_timeout", e.Message, StringComparison.Ordinal);
        Assert.Equal(PostgresErrorCodes.QueryCanceled, Assert.IsType<PostgresException>(e.InnerException).SqlState);
    }

    public static TheoryData<TimeSpan> BadTimeouts => [TimeSpan.Zero, TimeSpan.FromSeconds(-1), TimeSpan.FromMilliseconds(-2), TimeSpan.FromDays(25), TimeSpan.MaxValue, TimeSpan.MinValue];

    [Theory]
    [MemberData(nameof(BadTimeouts))]
    public async Task A_CommandTimeout_out_of_range_is_refused_naming_it(TimeSpan timeout)
    {
        var table = await CreateUsersAsync();
        var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Upsert(table).ExecuteAsync(db.Primary, Users(5), new PostgresBulkUpsertOptions { CommandTimeout = timeout }, Ct));
        Assert.Equal("CommandTimeout", e.ParamName);
        Assert.Contains("InfiniteTimeSpan", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CommandTimeout_is_whole_seconds_rounded_up_and_infinite_by_default()
    {
        Assert.Equal(Timeout.InfiniteTimeSpan, PostgresBulkUpsertOptions.Default.CommandTimeout);
        Assert.Equal(0, PostgresBulkUpsertOptions.Default.CommandTimeoutSeconds);
        Assert.Equal(1, new PostgresBulkUpsertOptions { CommandTimeout = TimeSpan.FromMilliseconds(1) }.CommandTimeoutSeconds);
        Assert.Equal(3, new PostgresBulkUpsertOptions { CommandTimeout = TimeSpan.FromSeconds(2.5) }.CommandTimeoutSeconds);
        Assert.Equal(int.MaxValue / 1000, new PostgresBulkUpsertOptions { CommandTimeout = PostgresBulkUpsertOptions.MaxCommandTimeout }.CommandTimeoutSeconds);
    }
}
