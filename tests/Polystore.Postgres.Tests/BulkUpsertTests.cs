using Npgsql;
using Polystore.Postgres.BulkUpsert;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Tests;

public sealed class BulkUpsertTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<string> CreateUsersAsync()
    {
        var table = $"{db.Schema}.users_{Guid.NewGuid():N}"[..(db.Schema.Length + 15)];
        await db.ExecAsync($"""
            CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
              score int NOT NULL DEFAULT 0 CHECK (score >= 0), region text, updated_at timestamptz, version int NOT NULL DEFAULT 0)
            """);
        return table;
    }

    private static PostgresBulkUpsertDefinition<UserRow> Upsert(string table) => PostgresBulkUpsert.Into<UserRow>(table)
        .Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score).Column("region", u => u.Region)
        .OnConflict("email").Set("updated_at = now()").Set("version = version + 1").Build();

    private static IEnumerable<UserRow> Users(int from, int count, string name = "n") =>
        Enumerable.Range(from, count).Select(i => new UserRow($"u{i}@example.com", $"{name}{i}", i % 1000, i % 2 == 0 ? "eu" : null));

    [Theory]
    [InlineData(10, 10_000)]      // unnest path
    [InlineData(10, 0)]           // COPY path, forced
    [InlineData(12_000, 10_000)]  // COPY path
    public async Task Counts_inserted_and_updated_rows(int n, int unnestThreshold)
    {
        var table = await CreateUsersAsync();
        var upsert = Upsert(table);
        var options = new PostgresBulkUpsertOptions { UnnestThreshold = unnestThreshold };
        var first = await upsert.ExecuteAsync(db.Primary, Users(0, n), options, Ct);
        Assert.Equal((n, n, 0L, 1), (first.RowsReceived, first.Inserted, first.Updated, first.Commits));

        var second = await upsert.ExecuteAsync(db.Primary, Users(n / 2, n, "m"), options, Ct);
        Assert.Equal((n - n / 2, (long)(n / 2)), (second.Inserted, second.Updated));
        Assert.Equal((long)(n + n / 2), await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
        Assert.Equal((long)(n / 2), await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'm%' AND updated_at IS NOT NULL AND version = 1"));
        Assert.Equal((long)n, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE updated_at IS NULL AND version = 0"));
    }

    [Theory]
    [InlineData(10)]
    [InlineData(6_000)]
    public async Task Duplicates_in_one_batch_last_one_wins(int n)
    {
        var table = await CreateUsersAsync();
        // Every key twice (first "old", then "new"), plus a third copy of key 0 at the very end.
        var rows = Users(0, n, "old").Concat(Users(0, n, "new")).Append(new UserRow("u0@example.com", "last", 7)).ToList();
        var result = await Upsert(table).ExecuteAsync(db.Primary, rows, PostgresBulkUpsertOptions.Default, Ct);
        Assert.Equal((2L * n + 1, n, 0L, n + 1L), (result.RowsReceived, result.Inserted, result.Updated, result.Skipped));
        Assert.Equal((long)n - 1, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'new%'"));
        Assert.Equal("last", await db.ScalarAsync<string>($"SELECT name FROM {table} WHERE email = 'u0@example.com'"));
    }

    [Theory]
    [InlineData(100)]      // hashes sorted in place
    [InlineData(100_000)]  // by radix
    [InlineData(300_000)]  // above the radix's range: in place again
    public void The_key_proof_finds_one_repeated_key_among_many(int n)
    {
        UpsertColumn<UserRow>[] keys = [new TypedUpsertColumn<UserRow, string>("email", u => u.Email)];
        var rows = Users(0, n).ToList();
        Assert.True(KeyTracker<UserRow>.Unique(keys, rows));

        rows.Insert(n / 3, rows[n - 7] with { Name = "again" });

        Assert.False(KeyTracker<UserRow>.Unique(keys, rows));
    }

    [Fact]
    public async Task Duplicates_found_after_an_unnumbered_copy_are_staged_again_and_the_last_one_wins()
    {
        // Inside the caller's transaction no proof is started before the COPY, so a collection in memory is always
        // sent without ordinals first; its repeated keys then make it go again, numbered.
        var table = await CreateUsersAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Users(0, 100, "pre"), cancellationToken: Ct);
        var rows = Users(0, 6_000, "old").Concat(Users(0, 6_000, "new")).Append(new UserRow("u0@example.com", "last", 7)).ToList();
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using var tx = await connection.BeginTransactionAsync(Ct);
        var result = await Upsert(table).ExecuteAsync(connection, tx, new SyncRows<UserRow>(rows), cancellationToken: Ct);
        await tx.CommitAsync(Ct);
        Assert.Equal((12_001L, 5_900L, 100L, 6_001L), (result.RowsReceived, result.Inserted, result.Updated, result.Skipped));
        Assert.Equal(5_999L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'new%'"));
        Assert.Equal("last", await db.ScalarAsync<string>($"SELECT name FROM {table} WHERE email = 'u0@example.com'"));
        Assert.Equal(100L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE version = 1"));
    }

    [Fact]
    public async Task A_collection_with_a_text_key_is_inserted_in_key_order_and_its_last_duplicate_still_wins()
    {
        // 12,000 rows in a shuffled order, one key repeated at the far end: the rows go to the table in key order
        // (the ids the MERGE hands out follow it), and the repeated key still ends with the caller's last row.
        var table = await CreateUsersAsync();
        var rows = Users(0, 12_000).OrderBy(u => u.Email.GetHashCode()).ToList();
        var result = await Upsert(table).ExecuteAsync(db.Primary, rows, cancellationToken: Ct);
        Assert.Equal((12_000L, 12_000L), (result.RowsReceived, result.Inserted));
        await using (var read = db.Primary.CreateCommand($"SELECT email FROM {table} ORDER BY id"))
        await using (var reader = await read.ExecuteReaderAsync(Ct))
        {
            var inOrder = new List<string>();
            while (await reader.ReadAsync(Ct)) inOrder.Add(reader.GetString(0));
            Assert.Equal(rows.Select(u => u.Email).Order(StringComparer.Ordinal), inOrder);
        }

        var again = rows.Select(u => u with { Name = "again" }).Append(rows[0] with { Name = "last" }).Reverse().Append(rows[0] with { Name = "final" }).ToList();
        var second = await Upsert(table).ExecuteAsync(db.Primary, again, cancellationToken: Ct);
        Assert.Equal((12_002L, 0L, 12_000L, 2L), (second.RowsReceived, second.Inserted, second.Updated, second.Skipped));
        Assert.Equal("final", await db.ScalarAsync<string>($"SELECT name FROM {table} WHERE email = '{rows[0].Email}'"));
        Assert.Equal(11_999L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name = 'again'"));
    }

    [Fact]
    public async Task A_collection_with_unique_keys_upserts_inside_the_callers_transaction()
    {
        var table = await CreateUsersAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Users(0, 5_000, "pre"), cancellationToken: Ct);
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using var tx = await connection.BeginTransactionAsync(Ct);
        var result = await Upsert(table).ExecuteAsync(connection, tx, new SyncRows<UserRow>(Users(0, 20_000, "m").ToList()), cancellationToken: Ct);
        await tx.CommitAsync(Ct);
        Assert.Equal((20_000L, 15_000L, 5_000L), (result.RowsReceived, result.Inserted, result.Updated));
        Assert.Equal(20_000L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'm%'"));
    }

    [Theory]
    [InlineData(10_000)]  // unnest path
    [InlineData(0)]       // COPY path
    public async Task Keys_repeated_far_apart_in_one_call_count_once(int chunk)
    {
        var table = await CreateUsersAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Users(0, 500, "pre"), cancellationToken: Ct);
        // 0..2999 new-or-existing, then 0..999 again (500 existed before the call, 500 inserted by it), then 3000..3499.
        var rows = Users(0, 3_000, "a").Concat(Users(0, 1_000, "b")).Concat(Users(3_000, 500, "c")).ToList();
        var result = await Upsert(table).ExecuteAsync(db.Primary, rows, new PostgresBulkUpsertOptions { UnnestThreshold = chunk }, Ct);
        Assert.Equal((4_500L, 3_000L, 500L, 1_000L), (result.RowsReceived, result.Inserted, result.Updated, result.Skipped));
        Assert.Equal(3_500L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
        Assert.Equal(1_000L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'b%'"));
    }

    [Theory]
    [InlineData(10, 10_000)]
    [InlineData(12_000, 10_000)]
    public async Task Counts_stay_exact_on_a_table_with_a_trigger(int n, int unnestThreshold)
    {
        // A trigger could write the table too, so counts come from RETURNING here rather than the table counters.
        var table = await CreateUsersAsync();
        var fn = table + "_bump";
        await db.ExecAsync($"""
            CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.version := NEW.version + 10; RETURN NEW; END $$;
            CREATE TRIGGER bump BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}();
            """);
        var options = new PostgresBulkUpsertOptions { UnnestThreshold = unnestThreshold };
        await Upsert(table).ExecuteAsync(db.Primary, Users(0, n), options, Ct);
        var second = await Upsert(table).ExecuteAsync(db.Primary, Users(n / 2, n, "m").Append(new UserRow($"u{n / 2}@example.com", "again", 1)), options, Ct);
        Assert.Equal((n - n / 2, (long)(n / 2), 1L), (second.Inserted, second.Updated, second.Skipped));
        Assert.Equal((long)(n / 2), await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE version = 11"));
    }

    /// <summary>
    /// The statement of the session that <paramref name="blockerPid"/> blocks, once there is one (PostgreSQL
    /// reports lock waits only through pg_stat_activity, so it is polled, for at most 30 s).
    /// A session may pass through a shorter wait first (a catalog lookup behind the table lock), so the MERGE is
    /// waited for, not the first statement seen waiting.
    /// </summary>
    private async Task<string> StatementBlockedByAsync(int blockerPid, Task waiter)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var query = await db.ScalarAsync<string?>($"SELECT query FROM pg_stat_activity WHERE {blockerPid} = ANY (pg_catalog.pg_blocking_pids(pid)) AND starts_with(query, 'MERGE INTO') LIMIT 1");
            if (query is not null) return query;
            Assert.False(waiter.IsCompleted, "the upsert finished without waiting on the other session's key");
            Assert.True(DateTime.UtcNow < deadline, "no session waited on the other session's key within 30 s");
            await Task.Delay(20, Ct);
        }
    }

    // Not run through PgBouncer: it finds the blocked MERGE by the other connection's ProcessID, PgBouncer's own cancel key there.
    [Trait("Requires", "DirectPostgres")]
    [Theory]
    [InlineData(10_000)]  // unnest path
    [InlineData(0)]       // COPY path
    public async Task A_key_inserted_concurrently_is_updated_not_an_error(int unnestThreshold)
    {
        // MERGE (the fast path) fails when another session inserts one of the keys first; the upsert must
        // then settle that row as ON CONFLICT would, with exact counts.
        var table = await CreateUsersAsync();
        await using var other = await db.Primary.OpenConnectionAsync(Ct);
        await using var tx = await other.BeginTransactionAsync(Ct);
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} (email, name) VALUES ('u5@example.com', 'other')", other, tx))
            await insert.ExecuteNonQueryAsync(Ct);
        var upsert = Upsert(table).ExecuteAsync(db.Primary, Users(0, 20), new PostgresBulkUpsertOptions { UnnestThreshold = unnestThreshold }, Ct);
        // Commit only once the upsert's MERGE waits on that uncommitted key.
        Assert.StartsWith("MERGE INTO", await StatementBlockedByAsync(other.ProcessID, upsert), StringComparison.Ordinal);
        await tx.CommitAsync(Ct);
        var result = await upsert;
        Assert.Equal((19L, 1L), (result.Inserted, result.Updated));
        Assert.Equal(20L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
        Assert.Equal(1, await db.ScalarAsync<int>($"SELECT version FROM {table} WHERE email = 'u5@example.com'"));
    }

    [Theory]
    [InlineData(10_000)]  // unnest path
    [InlineData(0)]       // COPY path
    public async Task Set_expressions_work_on_both_statements(int unnestThreshold)
    {
        // DEFAULT and increments run as MERGE; trusted SQL may name EXCLUDED, so it keeps ON CONFLICT.
        var table = await CreateUsersAsync();
        var options = new PostgresBulkUpsertOptions { UnnestThreshold = unnestThreshold };
        var viaMerge = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score)
            .OnConflict("email").Update("name").Set(SetExpression.Default("score")).Set("version = version + 2").Build();
        var viaOnConflict = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Score)
            .OnConflict("email").Update("name").Set(SetExpression.TrustedSql("score", "GREATEST(t.score, EXCLUDED.score)")).Build();
        await viaMerge.ExecuteAsync(db.Primary, [new UserRow("a@example.com", "a", 5)], options, Ct);
        var merged = await viaMerge.ExecuteAsync(db.Primary, [new UserRow("a@example.com", "a2", 9), new UserRow("b@example.com", "b", 3)], options, Ct);
        Assert.Equal((1L, 1L), (merged.Inserted, merged.Updated));
        Assert.Equal("a2|0|2", await db.ScalarAsync<string>($"SELECT name || '|' || score || '|' || version FROM {table} WHERE email = 'a@example.com'"));
        var greatest = await viaOnConflict.ExecuteAsync(db.Primary, [new UserRow("b@example.com", "b2", 8), new UserRow("a@example.com", "a3", 1)], options, Ct);
        Assert.Equal((0L, 2L), (greatest.Inserted, greatest.Updated));
        Assert.Equal("8|1", await db.ScalarAsync<string>($"SELECT (SELECT score FROM {table} WHERE email = 'b@example.com') || '|' || (SELECT score FROM {table} WHERE email = 'a@example.com')"));
    }

    [Fact]
    public async Task A_batch_failing_midway_writes_nothing()
    {
        var table = await CreateUsersAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Users(0, 100), cancellationToken: Ct);
        // Row 15,000 breaks CHECK (score >= 0) after 14,999 good rows, 100 of them updates.
        var rows = Users(0, 20_000, "changed").Select((u, i) => i == 15_000 ? u with { Score = -1 } : u);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(db.Primary, rows, cancellationToken: Ct));
        Assert.Contains("nothing was written", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, e.RowsCommitted);
        Assert.Equal(100L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'changed%'"));
    }

    [Fact]
    public async Task A_stream_that_throws_midway_writes_nothing()
    {
        var table = await CreateUsersAsync();
        static async IAsyncEnumerable<UserRow> Broken()
        {
            foreach (var u in Users(0, 15_000)) { await Task.Yield(); yield return u; }
            throw new InvalidOperationException("source broke");
        }
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(db.Primary, Broken(), cancellationToken: Ct));
        Assert.IsType<InvalidOperationException>(e.InnerException);
        Assert.Contains("nothing was written", e.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Fact]
    public async Task Chunked_mode_keeps_the_chunks_before_a_failure()
    {
        var table = await CreateUsersAsync();
        var rows = Users(0, 10_000).Select((u, i) => i == 7_500 ? u with { Score = -1 } : u);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() =>
            Upsert(table).ExecuteAsync(db.Primary, rows, new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Chunked, ChunkSize = 2_000 }, Ct));
        Assert.Equal(6_000, e.RowsCommitted);
        Assert.Equal(6_000L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Fact]
    public async Task Parallel_mode_writes_every_row_once()
    {
        var table = await CreateUsersAsync();
        var options = new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel, ChunkSize = 2_500, Parallelism = 4 };
        var first = await Upsert(table).ExecuteAsync(db.Primary, Users(0, 20_000), options, Ct);
        Assert.Equal((20_000L, 20_000L, 0L), (first.RowsReceived, first.Inserted, first.Updated));
        // Full chunks, plus at most one partial chunk per connection (rows are dealt to connections by key).
        Assert.InRange(first.Commits, 8, 8 + 4);
        var second = await Upsert(table).ExecuteAsync(db.Primary, Users(10_000, 20_000), options, Ct);
        Assert.Equal((10_000L, 10_000L), (second.Inserted, second.Updated));
        Assert.Equal(30_000L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Theory]
    [InlineData(500, 100, false)]     // dealt to connections by key hash
    [InlineData(5_000, 1_000, false)] // a collection of 40,000 rows with a text key, mostly new: dealt by key range
    [InlineData(5_000, 1_000, true)]  // the same into a table already as big as the batch: keys repeat, so never contiguous chunks
    public async Task Parallel_mode_keeps_the_last_row_of_a_key_across_chunks(int keys, int chunk, bool tableFull)
    {
        var table = await CreateUsersAsync();
        if (tableFull) await db.ExecAsync($"INSERT INTO {table} (email, name) SELECT 'p' || i || '@prefill.example', 'pre' FROM generate_series(1, {keys * 8}) i; ANALYZE {table}");
        // Every key 8 times in turn (row i has key i % keys): every key's rows land in several chunks.
        var rows = Enumerable.Range(0, keys * 8).Select(i => new UserRow($"u{i % keys}@example.com", $"v{i}", i % 1000)).ToList();
        var options = new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel, ChunkSize = chunk, Parallelism = 4 };
        var result = await Upsert(table).ExecuteAsync(db.Primary, rows, options, Ct);
        Assert.Equal((keys * 8L, (long)keys), (result.RowsReceived, result.Inserted));
        Assert.Equal(keys * 8L, result.Inserted + result.Updated + result.Skipped);
        // Key k's last row is row 7 * keys + k, and each counted write happened exactly once.
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE email LIKE 'u%' AND name <> 'v' || ({7 * keys} + substring(email from 'u([0-9]+)@')::int)"));
        Assert.Equal(result.Inserted + result.Updated, await db.ScalarAsync<long>($"SELECT sum(version + 1) FROM {table} WHERE email LIKE 'u%'"));
    }

    [Theory]
    [InlineData(false, false, "range")]     // mostly new rows: by key range, and the keys are proven once for every chunk
    [InlineData(true, false, "contiguous")] // updates of a full table with unique keys: contiguous chunks
    [InlineData(true, true, "hash")]        // the same with a repeated key: by key hash, so a key's rows stay on one connection
    public async Task Parallel_mode_deals_a_collection_by_what_the_batch_is(bool tableFull, bool repeatKey, string dealing)
    {
        var table = await CreateUsersAsync();
        if (tableFull) await db.ExecAsync($"INSERT INTO {table} (email, name) SELECT 'u' || i || '@example.com', 'pre' FROM generate_series(0, 19999) i");
        var rows = Users(0, 20_000).ToList();
        if (repeatKey) rows[^1] = rows[0];
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        var plan = await UpsertPlanResolver.ResolveAsync(Upsert(table), connection, null, Ct);
        await using var enumerator = new SyncRows<UserRow>(rows).GetAsyncEnumerator(Ct);
        var (bounds, contiguous, unique) = await ParallelUpsert<UserRow>.DealingAsync(connection, plan, enumerator, 4, Ct);
        Assert.Equal(dealing, contiguous ? "contiguous" : bounds is not null ? "range" : "hash");
        Assert.Equal(!repeatKey, unique);
        if (bounds is not null) Assert.Equal(3, bounds.Length);
    }

    [Fact]
    public async Task Parallel_mode_reports_a_failing_chunk_and_a_failing_source_without_hanging()
    {
        var table = await CreateUsersAsync();
        var options = new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel, ChunkSize = 1_000, Parallelism = 4 };
        var bad = Users(0, 20_000).Select((u, i) => i == 12_345 ? u with { Score = -1 } : u);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(db.Primary, bad, options, Ct));
        Assert.Contains("stay committed", e.Message, StringComparison.Ordinal);
        Assert.Equal(e.RowsCommitted, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE email = 'u12345@example.com'"));

        static IEnumerable<UserRow> Broken()
        {
            foreach (var u in Users(100_000, 5_000)) yield return u;
            throw new InvalidOperationException("source broke");
        }
        var source = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(db.Primary, Broken(), options, Ct));
        Assert.IsType<InvalidOperationException>(source.InnerException);
        Assert.Equal(source.RowsCommitted, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE email LIKE 'u1_____@example.com'"));
    }

    [Fact]
    public async Task Sixty_four_concurrent_upserts_of_the_same_keys_count_each_row_once()
    {
        var table = await CreateUsersAsync();
        var upsert = Upsert(table);
        var results = await Task.WhenAll(Enumerable.Range(0, 64).Select(t =>
            upsert.ExecuteAsync(db.Primary, Users(0, 200).Select(u => u with { Score = t }), cancellationToken: Ct)));
        Assert.Equal(200L, results.Sum(r => r.Inserted));
        Assert.Equal(64L * 200, results.Sum(r => r.Inserted + r.Updated));
        Assert.Equal(200L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
        Assert.Equal(64L * 200, await db.ScalarAsync<long>($"SELECT sum(version + 1) FROM {table}"));
    }

    [Theory]
    [InlineData("users; DROP TABLE x")]
    [InlineData("\"users\"")]
    [InlineData("pg_catalog.pg_class; --")]
    public async Task Injection_through_the_table_name_is_a_schema_error(string name)
    {
        var upsert = PostgresBulkUpsert.Into<UserRow>(name).Column("email", u => u.Email).OnConflict("email").Build();
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => upsert.ExecuteAsync(db.Primary, Users(0, 5), cancellationToken: Ct));
        Assert.Contains("was not found in the catalog", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("name\" = 'x'; --")]
    [InlineData("name, score")]
    [InlineData("nonexistent")]
    public async Task Unknown_or_hostile_column_names_fail_before_any_row_is_written(string column)
    {
        var table = await CreateUsersAsync();
        var upsert = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column(column, u => u.Name).OnConflict("email").Build();
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => upsert.ExecuteAsync(db.Primary, Users(0, 5_000), cancellationToken: Ct));
        Assert.Contains("has no column", e.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Fact]
    public async Task A_type_mismatch_names_the_column()
    {
        var table = await CreateUsersAsync();
        var upsert = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).Column("score", u => u.Email).OnConflict("email").Build();
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => upsert.ExecuteAsync(db.Primary, Users(0, 5), cancellationToken: Ct));
        Assert.Contains("column \"score\": String cannot be written to column of type integer", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_conflict_target_without_a_unique_index_is_a_clear_error()
    {
        var table = await CreateUsersAsync();
        var upsert = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).OnConflict("name").Build();
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => upsert.ExecuteAsync(db.Primary, Users(0, 5), cancellationToken: Ct));
        Assert.Contains("no unique index or primary key on exactly (name)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Works_inside_the_callers_transaction()
    {
        var table = await CreateUsersAsync();
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using (var tx = await connection.BeginTransactionAsync(Ct))
        {
            var r = await Upsert(table).ExecuteAsync(connection, tx, Users(0, 2_000), cancellationToken: Ct);
            Assert.Equal(2_000, r.Inserted);
            await tx.RollbackAsync(Ct);
        }
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Theory]
    [InlineData(10_000, 256L << 20, false, false)]  // unnest: no staging table, no join steering
    [InlineData(0, 256L << 20, true, true)]         // staged, and its MERGE steered
    [InlineData(0, 0L, true, false)]                // staged, planner left alone
    public async Task Inside_the_callers_transaction_the_batch_options_apply(int unnestThreshold, long mergeHashMemoryBytes, bool staged, bool steered)
    {
        var table = await CreateUsersAsync();
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using var tx = await connection.BeginTransactionAsync(Ct);
        await new NpgsqlCommand("SET LOCAL work_mem = '1234kB'", connection, tx).ExecuteNonQueryAsync(Ct);
        var options = new PostgresBulkUpsertOptions { UnnestThreshold = unnestThreshold, MergeHashMemoryBytes = mergeHashMemoryBytes };
        var r = await Upsert(table).ExecuteAsync(connection, tx, Users(0, 20), options, Ct);
        Assert.Equal((20L, 20L, 0), (r.RowsReceived, r.Inserted, r.Commits));
        // The staging table lives until the transaction ends; the steering keeps the caller's work_mem aside in polystore.work_mem.
        await using var seen = await new NpgsqlCommand(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema() AND relname LIKE 'polystore_upsert_%'), " +
            "coalesce(current_setting('polystore.work_mem', true), '') = '1234kB'", connection, tx).ExecuteReaderAsync(Ct);
        Assert.True(await seen.ReadAsync(Ct));
        Assert.Equal((staged, steered), (seen.GetBoolean(0), seen.GetBoolean(1)));
    }

    public static TheoryData<string, PostgresBulkUpsertOptions> OptionsThatCommit => new()
    {
        { "Mode", new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Chunked } },
        { "Mode", new PostgresBulkUpsertOptions { Mode = PostgresBulkUpsertMode.Parallel } },
        { "ChunkSize", new PostgresBulkUpsertOptions { ChunkSize = 1_000 } },
        { "Parallelism", new PostgresBulkUpsertOptions { Parallelism = 2 } },
    };

    [Theory]
    [MemberData(nameof(OptionsThatCommit))]
    public async Task Inside_the_callers_transaction_options_about_commits_are_refused_before_anything_is_sent(string option, PostgresBulkUpsertOptions options)
    {
        var table = await CreateUsersAsync();
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using var tx = await connection.BeginTransactionAsync(Ct);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Upsert(table).ExecuteAsync(connection, tx, Users(0, 20), options, Ct));
        Assert.Equal(option, e.ParamName);
        Assert.Contains(option, e.Message, StringComparison.Ordinal);
        // The transaction is untouched and goes on.
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} (email, name) VALUES ('own@example.com', 'own')", connection, tx))
            Assert.Equal(1, await insert.ExecuteNonQueryAsync(Ct));
        await tx.CommitAsync(Ct);
        Assert.Equal(1L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Fact]
    public async Task A_staged_merge_leaves_the_callers_planner_settings_as_they_were()
    {
        var table = await CreateUsersAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Users(0, 12_000), cancellationToken: Ct);
        await db.ExecAsync($"ANALYZE {table}");
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using var tx = await connection.BeginTransactionAsync(Ct);
        await new NpgsqlCommand("SET LOCAL work_mem = '1234kB'", connection, tx).ExecuteNonQueryAsync(Ct);
        // 12,000 staged rows against a 12,000-row table (more work_mem), then 11,000 against 52,000 rows (index probes):
        // each MERGE runs with its own settings, then the caller's are back.
        var r = await Upsert(table).ExecuteAsync(connection, tx, Users(0, 12_000, "m"), cancellationToken: Ct);
        Assert.Equal((0L, 12_000L), (r.Inserted, r.Updated));
        await new NpgsqlCommand($"INSERT INTO {table} (email, name) SELECT 'x' || i, 'x' FROM generate_series(1, 40000) i; ANALYZE {table}", connection, tx).ExecuteNonQueryAsync(Ct);
        r = await Upsert(table).ExecuteAsync(connection, tx, Users(100_000, 11_000, "p"), cancellationToken: Ct);
        Assert.Equal((11_000L, 0L), (r.Inserted, r.Updated));
        await using (var settings = await new NpgsqlCommand("SELECT current_setting('work_mem'), current_setting('enable_hashjoin'), current_setting('enable_mergejoin')", connection, tx).ExecuteReaderAsync(Ct))
        {
            Assert.True(await settings.ReadAsync(Ct));
            Assert.Equal(("1234kB", "on", "on"), (settings.GetString(0), settings.GetString(1), settings.GetString(2)));
        }
        await tx.CommitAsync(Ct);
        Assert.Equal(12_000L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'm%' AND version = 1"));
    }

    [Theory]
    [InlineData(100_000, 256L << 20, 64, "hash")]       // batch as large as the table: work_mem for a one-pass hash
    [InlineData(25_000, 256L << 20, 64, "hash")]        // a quarter of the table still hashes it
    [InlineData(100_000, 256L << 20, 1 << 20, "hash")]  // work_mem is never lowered
    [InlineData(100_000, 1L << 20, 64, "probe")]        // the hash would not fit under the cap: index probes
    [InlineData(500_000, 1L << 20, 64, "planner")]      // five times the table and no room for its hash: the planner's own join
    [InlineData(10_000, 256L << 20, 64, "probe")]       // a tenth of the table: index probes
    public async Task A_staged_merge_hashes_the_table_in_one_pass_or_probes_its_index(long rows, long cap, int workMemKb, string expected)
    {
        var table = await CreateUsersAsync();
        await db.ExecAsync($"INSERT INTO {table} (email, name) SELECT 'u' || i || '@example.com', 'n' FROM generate_series(1, 100000) i; ANALYZE {table}");
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        var plan = await UpsertPlanResolver.ResolveAsync(Upsert(table), connection, null, Ct);
        await using var tx = await connection.BeginTransactionAsync(Ct);
        await new NpgsqlCommand($"SET LOCAL work_mem = '{workMemKb}kB'", connection, tx).ExecuteNonQueryAsync(Ct);
        // The key's width comes from pg_stats ('u12345@example.com': ~18 bytes), not the 32-byte guess for a key it has
        // no statistics on, with the table's size; the correlation is of the e-mail (stored in generate_series order).
        var shape = await ShapeAsync(plan, connection, tx);
        Assert.InRange(shape.KeyWidth!.Value, 15, 22);
        Assert.InRange(shape.Rows, 90_000, 110_000);
        Assert.NotNull(shape.KeyCorrelation);
        await using (var steer = new NpgsqlBatch(connection, tx) { BatchCommands = { MergeJoinSteering.Steer(plan.SteerMerge, rows, cap, MergeJoinSteering.EntryBytes(shape.KeyWidth, 1)) } })
            await steer.ExecuteNonQueryAsync(Ct);
        await using var now = await new NpgsqlCommand(
            "SELECT pg_size_bytes(current_setting('work_mem')), current_setting('hash_mem_multiplier')::float8, current_setting('enable_hashjoin'), current_setting('enable_mergejoin')",
            connection, tx).ExecuteReaderAsync(Ct);
        Assert.True(await now.ReadAsync(Ct));
        var (bytes, multiplier, hashJoin, mergeJoin) = (now.GetInt64(0), now.GetDouble(1), now.GetString(2), now.GetString(3));
        if (expected != "hash")
        {
            Assert.Equal((workMemKb * 1024L, expected == "probe" ? "off" : "on", expected == "probe" ? "off" : "on"), (bytes, hashJoin, mergeJoin));
            return;
        }
        Assert.Equal(("on", "on"), (hashJoin, mergeJoin));
        if (workMemKb * 1024L * multiplier > 100_000 * 100.0) Assert.Equal(workMemKb * 1024L, bytes);
        else Assert.InRange(bytes * multiplier, 100_000 * 70.0, 100_000 * 100.0); // ~64 bytes + the e-mail (~18) per table row
    }

    // The table's shape as the staged path reads it before its COPY.
    private static async Task<TableShape> ShapeAsync(PostgresBulkUpsertPlan<UserRow> plan, NpgsqlConnection connection, NpgsqlTransaction tx)
    {
        await using var read = new NpgsqlBatch(connection, tx) { BatchCommands = { MergeJoinSteering.ReadShape(plan.TableShapeNow, plan.KeyNames) } };
        await using var reader = await read.ExecuteReaderAsync(Ct);
        Assert.True(await reader.ReadAsync(Ct));
        return MergeJoinSteering.ReadShapeRow(reader);
    }

    [Fact]
    public async Task A_batch_whose_hash_does_not_fit_into_an_empty_table_is_never_a_nested_loop()
    {
        // With hash and merge joins off, a table the planner believes empty is joined by a nested loop over a
        // sequential scan of the table the MERGE is filling: quadratic (a 10M-row batch ran for minutes). The steering
        // leaves a batch far larger than the table to the planner, which hashes the small table.
        var table = await CreateUsersAsync();
        await db.ExecAsync($"ANALYZE {table}");
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        var plan = await UpsertPlanResolver.ResolveAsync(Upsert(table), connection, null, Ct);
        await using var tx = await connection.BeginTransactionAsync(Ct);
        await new NpgsqlCommand(plan.CreateStaging, connection, tx).ExecuteNonQueryAsync(Ct);
        var staging = plan.Copy.Split(' ')[1];
        await new NpgsqlCommand($"INSERT INTO {staging} (email, name) SELECT 'u' || i || '@example.com', 'n' FROM generate_series(1, 50000) i; ANALYZE {staging}", connection, tx).ExecuteNonQueryAsync(Ct);
        await using (var steer = new NpgsqlBatch(connection, tx) { BatchCommands = { MergeJoinSteering.Steer(plan.SteerMerge, 50_000, 1L << 20, MergeJoinSteering.EntryBytes((await ShapeAsync(plan, connection, tx)).KeyWidth, 1)) } })
            await steer.ExecuteNonQueryAsync(Ct);
        var explained = (string)(await new NpgsqlCommand("EXPLAIN (FORMAT JSON) " + plan.UpsertFromStaging.Merge, connection, tx).ExecuteScalarAsync(Ct))!;
        Assert.DoesNotContain("Nested Loop", explained);
        await tx.RollbackAsync(Ct);
        // And through the API, with a hash cap the batch cannot fit under: every row lands, counted.
        var result = await Upsert(table).ExecuteAsync(db.Primary, Users(0, 30_000), new PostgresBulkUpsertOptions { MergeHashMemoryBytes = 1L << 20 }, Ct);
        Assert.Equal((30_000L, 0L), (result.Inserted, result.Updated));
    }

    [Theory]
    [InlineData("updated_at = now()", "updated_at = now()")]
    [InlineData("updated_at = CURRENT_TIMESTAMP", "updated_at = current_timestamp")]
    [InlineData("version = version + 2", "version = version + 2")]
    public void Allow_listed_set_expressions_parse(string text, string expected) => Assert.Equal(expected, SetExpression.Parse(text).ToString());

    [Theory]
    [InlineData("updated_at = pg_sleep(10)")]
    [InlineData("updated_at = now(); DROP TABLE users")]
    [InlineData("version = other + 1")]
    [InlineData("x\" = now()")]
    public void Other_set_expressions_are_rejected(string text) =>
        Assert.Throws<ArgumentException>(() => SetExpression.Parse(text));
}
