using Npgsql;
using Polystore.Postgres.BulkUpsert;
using Polystore.Testing;

namespace Polystore.Postgres.Tests;

/// <summary>
/// A bulk upsert whose transaction loses a deadlock was rolled back whole by PostgreSQL, so it runs again when its rows
/// can be read again, and the call succeeds. The deadlock is made on purpose: another session holds row "b", the
/// upsert takes "a" and waits for "b", then the other session asks for "a".
/// </summary>
// Not run through PgBouncer: finds the upsert's backend through the other session's pid, and sets deadlock_timeout per session.
[Trait("Requires", "DirectPostgres")]
public sealed class BulkUpsertLockConflictTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private sealed record Row(string Email, string Name);

    [Theory]
    [InlineData("atomic", "collection", 10_000, true)]
    [InlineData("atomic", "stream", 10_000, true)]
    [InlineData("atomic", "stream", 1, false)] // read past UnnestThreshold: the stream cannot be read again
    [InlineData("chunked", "collection", 10_000, true)] // the second chunk deadlocks: the first stays committed
    [InlineData("chunked", "stream", 10_000, true)]
    [InlineData("parallel", "collection", 10_000, true)] // one connection, one chunk of the four rows
    public async Task A_transaction_that_loses_a_deadlock_runs_again_when_its_rows_can_be_read_again(string mode, string source, int unnestThreshold, bool retried)
    {
        // The trigger makes the statement INSERT ... ON CONFLICT counted with RETURNING, which locks the rows in the
        // batch's order; a MERGE could walk the table in another order.
        var table = $"{db.Schema}.dl_{Guid.NewGuid():N}"[..(db.Schema.Length + 12)];
        await db.ExecAsync($"""
            CREATE TABLE {table} (email text PRIMARY KEY, name text NOT NULL);
            CREATE FUNCTION {table}_keep() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
            CREATE TRIGGER keep BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_keep();
            INSERT INTO {table} VALUES ('a', 'before'), ('b', 'before');
            """);
        // New rows "c" and "d" (the first chunk in chunked mode), then "a" and "b".
        Row[] batch = [new("c", "upsert"), new("d", "upsert"), new("a", "upsert"), new("b", "upsert")];
        IEnumerable<Row> rows = source == "collection" ? batch : batch.Select(r => r);
        var upsert = PostgresBulkUpsert.Into<Row>(table).Column("email", r => r.Email).Column("name", r => r.Name).OnConflict("email").Build();
        var logs = new LogCapture();
        var options = new PostgresBulkUpsertOptions { UnnestThreshold = unnestThreshold, LoggerFactory = logs };
        if (mode == "chunked") options = options with { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 2 };
        if (mode == "parallel") options = options with { Mode = PostgresBulkUpsertMode.Parallel, Parallelism = 1, ChunkSize = 4 };

        await using var other = await db.Primary.OpenConnectionAsync(Ct);
        await using var hold = await other.BeginTransactionAsync(Ct);
        // The deadlock detector runs in the session that has waited deadlock_timeout: the upsert's (1 s), never this one.
        await ExecAsync(other, hold, "SET LOCAL deadlock_timeout = '60s'");
        await ExecAsync(other, hold, $"UPDATE {table} SET name = 'other' WHERE email = 'b'");
        var run = upsert.ExecuteAsync(db.Primary, rows, options, Ct);
        await Poll.UntilAsync(async () => run.IsCompleted || await db.ScalarAsync<bool>(
                $"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE {other.ProcessID} = ANY (pg_catalog.pg_blocking_pids(pid)))"),
            TimeSpan.FromSeconds(60), "the upsert to wait for row b");
        Assert.False(run.IsCompleted, $"the upsert ended before it waited: {run.Exception?.InnerException?.Message}");
        // The upsert holds "a" and waits for "b": asking for "a" closes the cycle. The upsert's transaction is the one
        // rolled back, which frees "a" for this session.
        await ExecAsync(other, hold, $"UPDATE {table} SET name = 'other' WHERE email = 'a'");
        await hold.CommitAsync(Ct);

        var names = $"SELECT string_agg(email || '=' || name, ',' ORDER BY email) FROM {table}";
        IEnumerable<CapturedLog> Retries() => logs.Logs.Where(l => l.EventId.Name is "BulkUpsertRetried" or "BulkUpsertChunkRetried");
        if (retried)
        {
            var result = await run;
            Assert.Equal((4L, 2L, 2L), (result.RowsReceived, result.Inserted, result.Updated));
            Assert.Equal(mode == "chunked" ? 2 : 1, result.Commits);
            Assert.Equal("a=upsert,b=upsert,c=upsert,d=upsert", await db.ScalarAsync<string>(names));
            // Usually one retry: its pause lets the other session, woken by the rollback, take "a" first. On a loaded
            // machine it may not have yet, and the retry loses a second deadlock: each retry names its attempt, in order.
            var retries = Retries().Select(l => l.Message).ToList();
            Assert.InRange(retries.Count, 1, LockConflict.MaxAttempts - 1);
            for (var i = 0; i < retries.Count; i++)
                Assert.Contains($"SQLSTATE 40P01, attempt {i + 1})", retries[i], StringComparison.Ordinal);
        }
        else
        {
            var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => run);
            Assert.Equal(PostgresErrorCodes.DeadlockDetected, Assert.IsType<PostgresException>(e.InnerException).SqlState);
            Assert.Contains("nothing was written", e.Message, StringComparison.Ordinal);
            Assert.Equal("a=other,b=other", await db.ScalarAsync<string>(names));
            Assert.Empty(Retries());
        }
    }

    private static async Task ExecAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(Ct);
    }
}
