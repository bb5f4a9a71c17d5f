using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres.BulkUpsert;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// Every way a bulk upsert can stop once it reads rows (the row sequence or a row mapping throws, a null row, the
/// caller cancels, the connection is lost during a COMMIT) in every mode: the exception says exactly how many rows
/// are committed, checked against the table.
/// </summary>
public sealed class BulkUpsertFailureTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> Modes => ["atomic", "chunked", "chunked-copy", "parallel"];

    private static PostgresBulkUpsertOptions Options(string mode) => mode switch
    {
        "atomic" => new() { Mode = PostgresBulkUpsertMode.Atomic },
        "chunked" => new() { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 5_000 },
        "chunked-copy" => new() { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 5_000, UnnestThreshold = 0 },
        "parallel" => new() { Mode = PostgresBulkUpsertMode.Parallel, ChunkSize = 1_000, Parallelism = 4 },
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    private async Task<string> CreateUsersAsync()
    {
        var table = $"{db.Schema}.users_{Guid.NewGuid():N}"[..(db.Schema.Length + 15)];
        await db.ExecAsync($"CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, score int NOT NULL DEFAULT 0)");
        return table;
    }

    private static PostgresBulkUpsertDefinition<UserRow> Upsert(string table) => PostgresBulkUpsert.Into<UserRow>(table)
        .Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).OnConflict("email").Build();

    private static IEnumerable<UserRow> Users(int from, int count) =>
        Enumerable.Range(from, count).Select(i => new UserRow($"u{i}@example.com", $"n{i}", i % 1000));

    private Task<long> CountAsync(string table) => db.ScalarAsync<long>($"SELECT count(*) FROM {table}");

    /// <summary>The count matches the table, and in chunked modes whole chunks are kept.</summary>
    private async Task AssertCommittedAsync(string mode, string table, long rowsCommitted, long rowsInDoubt)
    {
        Assert.Equal(0, rowsInDoubt);
        Assert.Equal(rowsCommitted, await CountAsync(table));
        if (mode == "atomic") Assert.Equal(0, rowsCommitted);
        if (mode.StartsWith("chunked", StringComparison.Ordinal)) Assert.Equal(0, rowsCommitted % 5_000);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_row_sequence_that_throws_is_reported_with_the_rows_committed_before_it(string mode)
    {
        var table = await CreateUsersAsync();
        static IEnumerable<UserRow> Broken()
        {
            foreach (var u in Users(0, 12_345)) yield return u;
            throw new InvalidOperationException("source broke");
        }
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(db.Primary, Broken(), Options(mode), Ct));
        Assert.Equal("source broke", Assert.IsType<InvalidOperationException>(e.InnerException).Message);
        Assert.Contains(mode == "atomic" ? "nothing was written" : $"({e.RowsCommitted:N0} rows) stay committed", e.Message, StringComparison.Ordinal);
        await AssertCommittedAsync(mode, table, e.RowsCommitted, e.RowsInDoubt);
        if (mode.StartsWith("chunked", StringComparison.Ordinal)) Assert.Equal(10_000, e.RowsCommitted);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task An_async_row_stream_that_throws_is_reported_with_the_rows_committed_before_it(string mode)
    {
        var table = await CreateUsersAsync();
        static async IAsyncEnumerable<UserRow> Broken()
        {
            foreach (var u in Users(0, 12_345))
            {
                await Task.Yield();
                yield return u;
            }
            throw new IOException("stream broke");
        }
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(db.Primary, Broken(), Options(mode), Ct));
        Assert.IsType<IOException>(e.InnerException);
        await AssertCommittedAsync(mode, table, e.RowsCommitted, e.RowsInDoubt);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_column_mapping_that_throws_is_reported_with_the_rows_committed_before_it(string mode)
    {
        var table = await CreateUsersAsync();
        // The failing column is not the conflict key (parallel mode reads the key while dealing rows, the rest in a worker).
        var upsert = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email)
            .Column("name", u => u.Name == "n12345" ? throw new FormatException("bad row") : u.Name).OnConflict("email").Build();
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => upsert.ExecuteAsync(db.Primary, Users(0, 20_000), Options(mode), Ct));
        Assert.IsType<FormatException>(e.InnerException);
        await AssertCommittedAsync(mode, table, e.RowsCommitted, e.RowsInDoubt);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_null_row_is_named_as_such_with_the_rows_committed_before_it(string mode)
    {
        var table = await CreateUsersAsync();
        var rows = Users(0, 20_000).Select((u, i) => i == 12_345 ? null! : u);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(db.Primary, rows, Options(mode), Ct));
        Assert.Contains("null row", Assert.IsType<ArgumentException>(e.InnerException).Message, StringComparison.Ordinal);
        await AssertCommittedAsync(mode, table, e.RowsCommitted, e.RowsInDoubt);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_cancellation_between_rows_is_an_OperationCanceledException_with_the_rows_committed_before_it(string mode)
    {
        var table = await CreateUsersAsync();
        using var cancel = new CancellationTokenSource();
        var rows = Users(0, 100_000).Select((u, i) =>
        {
            if (i == 12_345) cancel.Cancel();
            return u;
        });
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertCanceledException>(() => Upsert(table).ExecuteAsync(db.Primary, rows, Options(mode), cancel.Token));
        Assert.Equal(cancel.Token, e.CancellationToken);
        Assert.IsAssignableFrom<OperationCanceledException>(e.InnerException);
        await AssertCommittedAsync(mode, table, e.RowsCommitted, e.RowsInDoubt);
        if (mode.StartsWith("chunked", StringComparison.Ordinal)) Assert.Equal(10_000, e.RowsCommitted);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_cancellation_at_any_moment_of_a_long_load_keeps_an_exact_count(string mode)
    {
        var table = await CreateUsersAsync();
        using var cancel = new CancellationTokenSource();
        long read = 0;
        var rows = Users(0, 2_000_000).Select(u => { Interlocked.Increment(ref read); return u; });
        var run = Upsert(table).ExecuteAsync(db.Primary, rows, Options(mode), cancel.Token);
        // Atomic mode shows nothing until it commits: it is cancelled once it has read 10,000 rows, with the COPY (or
        // later the MERGE) under way. Counted here, not in pg_stat_progress_copy: a poll slowed by a loaded machine could
        // miss the whole COPY there, and the load then finished before it was cancelled. The others are cancelled once
        // some chunks are in.
        if (mode == "atomic")
            await Poll.UntilAsync(() => Task.FromResult(run.IsCompleted || Interlocked.Read(ref read) > 10_000), TimeSpan.FromSeconds(60), "the load never got going");
        else
            await Poll.UntilAsync(async () => run.IsCompleted || await CountAsync(table) >= 10_000, TimeSpan.FromSeconds(60), "no chunk was committed");
        await cancel.CancelAsync();
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertCanceledException>(() => run);
        Assert.True(run.IsCanceled);
        await AssertCommittedAsync(mode, table, e.RowsCommitted, e.RowsInDoubt);
    }

    [Fact]
    public async Task Catching_OperationCanceledException_still_reaches_the_count()
    {
        var table = await CreateUsersAsync();
        using var cancel = new CancellationTokenSource();
        var rows = Users(0, 30_000).Select((u, i) =>
        {
            if (i == 20_000) cancel.Cancel();
            return u;
        });
        try
        {
            await Upsert(table).ExecuteAsync(db.Primary, rows, Options("chunked"), cancel.Token);
            Assert.Fail("not cancelled");
        }
        catch (OperationCanceledException e)
        {
            Assert.Equal(20_000, Assert.IsType<PostgresBulkUpsertCanceledException>(e).RowsCommitted);
        }
    }

    /// <summary>A data source on the private server through <paramref name="proxy"/>, one host, no TLS.</summary>
    private static PostgresDataSources ThroughProxy(CommitCuttingProxy proxy)
    {
        var c = TestServers.Postgres.Connection;
        return PostgresDataSources.Create(new PostgresSettings
        {
            Connection = new() { Host = "127.0.0.1", Port = proxy.Port, Database = c.Database, User = c.User, Password = c.Password, Sslmode = PostgresSslMode.Disable, Pooler = c.Pooler },
            Pool = new() { MaxSize = 10, MaxOverflow = 0, PoolTimeout = 5 },
        });
    }

    private static CommitCuttingProxy Proxy(int cutAtCommit, bool refuseAfterCut) =>
        new CommitCuttingProxy(TestServers.Postgres.Connection.Host, TestServers.Postgres.Connection.Port) { CutAtCommit = cutAtCommit, RefuseAfterCut = refuseAfterCut }.Start();

    [Theory]
    [InlineData("chunked")]
    [InlineData("chunked-copy")]
    [InlineData("parallel")]
    public async Task A_commit_whose_answer_is_lost_is_settled_with_the_server_and_counted(string mode)
    {
        var table = await CreateUsersAsync();
        await using var proxy = Proxy(cutAtCommit: 3, refuseAfterCut: false);
        await using var sources = ThroughProxy(proxy);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(sources.Primary, Users(0, 30_000), Options(mode), Ct));
        Assert.True(proxy.Cut.IsCompleted);
        // The third chunk committed though its connection broke: the server said so afterwards.
        await AssertCommittedAsync(mode, table, e.RowsCommitted, e.RowsInDoubt);
        Assert.True(e.RowsCommitted >= (mode == "parallel" ? 3_000 : 15_000), $"{e.RowsCommitted} rows counted");
        Assert.IsAssignableFrom<NpgsqlException>(e.InnerException);
    }

    [Fact]
    public async Task An_atomic_commit_whose_answer_is_lost_but_that_committed_is_a_success()
    {
        var table = await CreateUsersAsync();
        await using var proxy = Proxy(cutAtCommit: 1, refuseAfterCut: false);
        await using var sources = ThroughProxy(proxy);
        var result = await Upsert(table).ExecuteAsync(sources.Primary, Users(0, 12_000), Options("atomic"), Ct);
        Assert.True(proxy.Cut.IsCompleted);
        Assert.Equal((12_000L, 12_000L, 1), (result.RowsReceived, result.Inserted, result.Commits));
        Assert.Equal(12_000L, await CountAsync(table));
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_commit_whose_answer_is_lost_while_the_server_cannot_be_asked_is_reported_in_doubt(string mode)
    {
        var table = await CreateUsersAsync();
        await using var proxy = Proxy(cutAtCommit: mode == "atomic" ? 1 : 3, refuseAfterCut: true);
        await using var sources = ThroughProxy(proxy);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(sources.Primary, Users(0, 30_000), Options(mode), Ct));
        var chunk = mode switch { "atomic" => 30_000, "parallel" => 1_000, _ => 5_000 };
        Assert.Equal(chunk, e.RowsInDoubt);
        Assert.Contains("in doubt", e.Message, StringComparison.Ordinal);
        Assert.Matches(@"SELECT pg_xact_status\('\d+'\)", e.Message);
        // It did commit: the table holds exactly the committed rows and the in-doubt ones.
        Assert.Equal(e.RowsCommitted + e.RowsInDoubt, await CountAsync(table));
    }

    // Not run through PgBouncer: it finds and kills the committing session by backend pid, which PgBouncer hides.
    [Trait("Requires", "DirectPostgres")]
    [Theory]
    [InlineData("chunked")]
    [InlineData("parallel")]
    public async Task A_connection_killed_during_its_commit_is_settled_as_rolled_back(string mode)
    {
        // A deferred constraint trigger waits at COMMIT for a lock this test holds, then the backend is terminated:
        // the transaction never commits, and the count says so without any doubt.
        var table = await CreateUsersAsync();
        var fn = table + "_hold";
        await db.ExecAsync($"""
            CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.email = 'u12000@example.com' THEN PERFORM pg_advisory_xact_lock(hashtext('{fn}')); END IF; RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER hold AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {fn}();
            """);
        await using var holder = await db.Primary.OpenConnectionAsync(Ct);
        await using var holding = await holder.BeginTransactionAsync(Ct);
        await using (var take = new NpgsqlCommand($"SELECT pg_advisory_xact_lock(hashtext('{fn}'))", holder, holding))
            await take.ExecuteNonQueryAsync(Ct);
        // One host only: a multi-host data source would mark the server offline when its connection is killed.
        var c = TestServers.Postgres.Connection;
        await using var sources = PostgresDataSources.Create(new PostgresSettings { Connection = c, Pool = new() { MaxSize = 10 } });
        var run = Upsert(table).ExecuteAsync(sources.Primary, Users(0, 30_000), Options(mode), Ct);
        var pid = 0;
        await Poll.UntilAsync(async () => (pid = await db.ScalarAsync<int?>(
            $"SELECT pid FROM pg_stat_activity WHERE query = 'COMMIT' AND {holder.ProcessID} = ANY (pg_blocking_pids(pid))") ?? 0) > 0,
            TimeSpan.FromSeconds(60), "no COMMIT waited on the held lock");
        Assert.True(await db.ScalarAsync<bool>($"SELECT pg_terminate_backend({pid})"));
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => run);
        await AssertCommittedAsync(mode, table, e.RowsCommitted, e.RowsInDoubt);
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE email = 'u12000@example.com'"));
    }

    [Fact]
    public async Task A_callers_transaction_that_already_failed_is_reported_before_a_row_is_read()
    {
        // The catalog read is the first statement the upsert sends, so the server's refusal comes before any row.
        var table = await CreateUsersAsync();
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        await using (var fail = new NpgsqlCommand("SELECT 1 / 0", connection, transaction))
            await Assert.ThrowsAsync<PostgresException>(() => fail.ExecuteScalarAsync(Ct));
        var read = 0;
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() =>
            Upsert(table).ExecuteAsync(connection, transaction, Users(0, 10).Select(u => { read++; return u; }), cancellationToken: Ct));
        Assert.Equal(PostgresErrorCodes.InFailedSqlTransaction, Assert.IsType<PostgresException>(e.InnerException).SqlState);
        Assert.Contains("inside the caller's transaction", e.Message, StringComparison.Ordinal);
        Assert.Equal((0, 0L), (read, e.RowsCommitted));
    }
}
