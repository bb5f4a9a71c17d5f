using Npgsql;
using Polystore.Postgres.BulkUpsert;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Tests;

/// <summary>
/// The catalog facts of a bulk upsert are read once per table and checked on every call: a table changed between
/// two calls (column added, dropped, retyped, index dropped, table re-created, another search_path) is upserted
/// correctly or refused with the same clear error as on a first call, never written with stale facts.
/// </summary>
public sealed class BulkUpsertSchemaCacheTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private sealed record Item(string Key, string Name, int Score);

    private async Task<string> CreateTableAsync(string? name = null)
    {
        var table = $"{db.Schema}.{name ?? "t_" + Guid.NewGuid().ToString("N")[..10]}";
        await db.ExecAsync($"CREATE TABLE {table} (id bigserial PRIMARY KEY, key text NOT NULL UNIQUE, name text NOT NULL, score int NOT NULL DEFAULT 0)");
        return table;
    }

    private static PostgresBulkUpsertDefinition<Item> Upsert(string table) => PostgresBulkUpsert.Into<Item>(table)
        .Column("key", i => i.Key).Column("name", i => i.Name).Column("score", i => i.Score).OnConflict("key").Build();

    private static List<Item> Items(int from, int count, string name = "n") =>
        Enumerable.Range(from, count).Select(i => new Item($"k{i}", $"{name}{i}", i)).ToList();

    // Unnest path (one batch of arrays) and staged path (COPY), where the check rides with different statements.
    public static TheoryData<int> Thresholds => [10_000, 0];

    private static PostgresBulkUpsertOptions Options(int threshold) => new() { UnnestThreshold = threshold };

    [Theory]
    [MemberData(nameof(Thresholds))]
    public async Task A_partitioned_table_is_upserted_with_exact_counts_from_its_partitions(int threshold)
    {
        var table = $"{db.Schema}.p_{Guid.NewGuid():N}"[..^22];
        await db.ExecAsync($"CREATE TABLE {table} (key text PRIMARY KEY, name text NOT NULL, score int NOT NULL) PARTITION BY HASH (key)");
        for (var i = 0; i < 3; i++) await db.ExecAsync($"CREATE TABLE {table}_{i} PARTITION OF {table} FOR VALUES WITH (MODULUS 3, REMAINDER {i})");
        var upsert = Upsert(table);

        var first = await upsert.ExecuteAsync(db.Primary, Items(0, 60), Options(threshold), Ct);
        var second = await upsert.ExecuteAsync(db.Primary, Items(30, 60, "m"), Options(threshold), Ct);

        Assert.Equal((60L, 0L), (first.Inserted, first.Updated));
        Assert.Equal((30L, 30L), (second.Inserted, second.Updated));
        Assert.Equal(90, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
        Assert.Equal(30, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'm%' AND score < 60"));

        // With a trigger on a partition the counters are unsafe and RETURNING xmax is refused: a clear error, nothing written.
        await db.ExecAsync($"CREATE FUNCTION {table}_noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'");
        await db.ExecAsync($"CREATE TRIGGER noop BEFORE INSERT ON {table}_0 FOR EACH ROW EXECUTE FUNCTION {table}_noop()");
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => Upsert(table).ExecuteAsync(db.Primary, Items(500, 5), Options(threshold), Ct));
        Assert.Contains("partitioned table with triggers", e.Message, StringComparison.Ordinal);
        Assert.Equal(90, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    private sealed record Reading(int Device, DateTime At, string Label, decimal Amount, int Value);

    [Theory]
    [MemberData(nameof(Thresholds))]
    public async Task Keys_postgresql_calls_equal_but_dotnet_does_not_resolve_last_row_wins(int threshold)
    {
        var table = $"{db.Schema}.eq_{Guid.NewGuid():N}"[..^22];
        await db.ExecAsync($"CREATE COLLATION IF NOT EXISTS {db.Schema}.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)");
        await db.ExecAsync($"CREATE TABLE {table} (device int, at timestamptz, label text COLLATE {db.Schema}.ci, amount numeric(10,2), v int NOT NULL, PRIMARY KEY (device, at))");
        await db.ExecAsync($"CREATE UNIQUE INDEX ON {table} (label)");
        await db.ExecAsync($"CREATE UNIQUE INDEX ON {table} (amount)");
        var t0 = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        PostgresBulkUpsertDefinition<Reading> On(params string[] keys) => PostgresBulkUpsert.Into<Reading>(table)
            .Column("device", r => r.Device).Column("at", r => r.At).Column("label", r => r.Label).Column("amount", r => r.Amount).Column("v", r => r.Value)
            .OnConflict(keys).Build();

        // 100 ns apart: one microsecond in PostgreSQL.
        var times = await On("device", "at").ExecuteAsync(db.Primary, [new Reading(1, t0, "a", 1m, 10), new Reading(1, t0.AddTicks(1), "b", 2m, 20)], Options(threshold), Ct);
        Assert.Equal((1L, 0L), (times.Inserted, times.Updated));
        Assert.Equal(20, await db.ScalarAsync<int>($"SELECT v FROM {table}"));
        await db.ExecAsync($"TRUNCATE {table}");
        // Equal under a case-blind collation.
        var labels = await On("label").ExecuteAsync(db.Primary, [new Reading(1, t0, "Alice", 1m, 10), new Reading(2, t0, "alice", 2m, 20)], Options(threshold), Ct);
        Assert.Equal(1L, labels.Inserted);
        Assert.Equal(20, await db.ScalarAsync<int>($"SELECT v FROM {table}"));
        await db.ExecAsync($"TRUNCATE {table}");
        // Equal once rounded to the column's scale.
        var amounts = await On("amount").ExecuteAsync(db.Primary, [new Reading(1, t0, "a", 1.001m, 10), new Reading(2, t0, "b", 1.004m, 20)], Options(threshold), Ct);
        Assert.Equal(1L, amounts.Inserted);
        Assert.Equal(20, await db.ScalarAsync<int>($"SELECT v FROM {table}"));
    }

    [Fact]
    public async Task A_key_with_included_columns_is_a_key_over_its_key_columns_only()
    {
        var table = $"{db.Schema}.inc_{Guid.NewGuid():N}"[..^22];
        await db.ExecAsync($"CREATE TABLE {table} (key text, name text NOT NULL, score int NOT NULL, PRIMARY KEY (key) INCLUDE (name))");
        var result = await Upsert(table).ExecuteAsync(db.Primary, Items(0, 10), cancellationToken: Ct);
        Assert.Equal(10, result.Inserted);
        // (key, name) is not a key: the INCLUDE column is carried, not compared.
        var wide = PostgresBulkUpsert.Into<Item>(table).Column("key", i => i.Key).Column("name", i => i.Name).Column("score", i => i.Score).OnConflict("key", "name").Build();
        await Assert.ThrowsAsync<PostgresSchemaException>(() => wide.ExecuteAsync(db.Primary, Items(0, 1), cancellationToken: Ct));
    }

    [Fact]
    public async Task A_string_mapped_to_a_single_byte_char_column_is_refused_before_any_row()
    {
        var table = $"{db.Schema}.ch_{Guid.NewGuid():N}"[..^22];
        await db.ExecAsync($"CREATE TABLE {table} (key text PRIMARY KEY, flag \"char\" NOT NULL)");
        var upsert = PostgresBulkUpsert.Into<Item>(table).Column("key", i => i.Key).Column("flag", i => i.Name).OnConflict("key").Build();
        await Assert.ThrowsAsync<PostgresSchemaException>(() => upsert.ExecuteAsync(db.Primary, Items(0, 1), cancellationToken: Ct));
    }

    [Theory]
    [MemberData(nameof(Thresholds))]
    public async Task A_column_added_between_two_calls_is_written_by_the_next_definition_that_maps_it(int threshold)
    {
        var table = await CreateTableAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Items(0, 50), Options(threshold), Ct);
        await db.ExecAsync($"ALTER TABLE {table} ADD COLUMN tag text NOT NULL DEFAULT 'none'");

        // The definition without the new column still works (the server fills the default).
        var same = await Upsert(table).ExecuteAsync(db.Primary, Items(25, 50, "m"), Options(threshold), Ct);
        Assert.Equal((25L, 25L), (same.Inserted, same.Updated));
        var tagged = PostgresBulkUpsert.Into<Item>(table).Column("key", i => i.Key).Column("name", i => i.Name).Column("tag", i => "t" + i.Score).OnConflict("key").Build();
        var result = await tagged.ExecuteAsync(db.Primary, Items(0, 100, "x"), Options(threshold), Ct);
        Assert.Equal((25L, 75L), (result.Inserted, result.Updated));
        Assert.Equal(100L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE tag = 't' || substr(key, 2) AND name LIKE 'x%'"));
    }

    [Theory]
    [MemberData(nameof(Thresholds))]
    public async Task A_column_dropped_between_two_calls_gives_the_clear_error_and_writes_nothing(int threshold)
    {
        var table = await CreateTableAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Items(0, 50), Options(threshold), Ct);
        await db.ExecAsync($"ALTER TABLE {table} DROP COLUMN score");

        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => Upsert(table).ExecuteAsync(db.Primary, Items(0, 100, "m"), Options(threshold), Ct));
        Assert.Contains("no column \"score\"", e.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'm%'"));
    }

    [Theory]
    [MemberData(nameof(Thresholds))]
    public async Task A_column_retyped_between_two_calls_is_written_with_its_new_type(int threshold)
    {
        var table = await CreateTableAsync();
        var upsert = Upsert(table);
        await upsert.ExecuteAsync(db.Primary, Items(0, 50), Options(threshold), Ct);
        // int4 to int8: binary COPY with the old type would send 4 bytes where 8 are read.
        await db.ExecAsync($"ALTER TABLE {table} ALTER COLUMN score TYPE bigint");
        var result = await upsert.ExecuteAsync(db.Primary, Items(0, 60, "m"), Options(threshold), Ct);
        Assert.Equal((10L, 50L), (result.Inserted, result.Updated));
        Assert.Equal(Enumerable.Range(0, 60).Sum(i => (long)i), await db.ScalarAsync<decimal>($"SELECT sum(score) FROM {table}"));

        // int8 to float4... via int4 to real: the same binary width, which COPY would take silently as other values.
        await db.ExecAsync($"ALTER TABLE {table} ALTER COLUMN score TYPE real");
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => upsert.ExecuteAsync(db.Primary, Items(0, 60, "z"), Options(threshold), Ct));
        Assert.Contains("column \"score\"", e.Message, StringComparison.Ordinal);
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'z%'"));
    }

    private sealed record Stamp(string Key, DateTime At);

    [Theory]
    [MemberData(nameof(Thresholds))]
    public async Task A_value_refused_for_the_old_column_type_is_written_once_the_column_is_retyped(int threshold)
    {
        var table = $"{db.Schema}.ts_{Guid.NewGuid():N}"[..^22];
        await db.ExecAsync($"CREATE TABLE {table} (key text PRIMARY KEY, at timestamp NOT NULL)");
        var upsert = PostgresBulkUpsert.Into<Stamp>(table).Column("key", s => s.Key).Column("at", s => s.At).OnConflict("key").Build();
        var rows = new[] { new Stamp("a", new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc)) };
        // Npgsql refuses a UTC DateTime for timestamp without time zone, before anything is sent.
        await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => upsert.ExecuteAsync(db.Primary, rows, Options(threshold), Ct));
        await db.ExecAsync($"ALTER TABLE {table} ALTER COLUMN at TYPE timestamptz");
        // The refused write forgot the cached plan (it may name an old type): the next call reads the catalog again.
        Assert.Equal(1, (await upsert.ExecuteAsync(db.Primary, rows, Options(threshold), Ct)).Inserted);
    }

    [Fact]
    public async Task The_unique_index_dropped_between_two_calls_gives_the_clear_error()
    {
        var table = await CreateTableAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Items(0, 50), cancellationToken: Ct);
        var constraint = await db.ScalarAsync<string>($"SELECT conname::text FROM pg_constraint WHERE conrelid = '{table}'::regclass AND contype = 'u'");
        await db.ExecAsync($"ALTER TABLE {table} DROP CONSTRAINT {constraint}");
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => Upsert(table).ExecuteAsync(db.Primary, Items(0, 50), cancellationToken: Ct));
        Assert.Contains("no unique index", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Thresholds))]
    public async Task A_table_dropped_and_created_again_with_a_trigger_is_counted_right(int threshold)
    {
        var table = await CreateTableAsync();
        await Upsert(table).ExecuteAsync(db.Primary, Items(0, 50), Options(threshold), Ct);
        await db.ExecAsync($"DROP TABLE {table}");
        await db.ExecAsync($"CREATE TABLE {table} (key text PRIMARY KEY, name text NOT NULL, score bigint NOT NULL)");
        await db.ExecAsync($"INSERT INTO {table} SELECT 'k' || i, 'old', i FROM generate_series(0, 9) i");
        // A trigger that writes the table too: counts must come from RETURNING now, not the table counters.
        await db.ExecAsync($"""
            CREATE FUNCTION {db.Schema}.audit_{table[(db.Schema.Length + 1)..]}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.key LIKE 'k1%' AND NEW.name <> 'echo' THEN INSERT INTO {table} VALUES ('echo' || NEW.key, 'echo', 0) ON CONFLICT DO NOTHING; END IF; RETURN NEW; END $$;
            CREATE TRIGGER audit AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {db.Schema}.audit_{table[(db.Schema.Length + 1)..]}();
            """);
        var result = await Upsert(table).ExecuteAsync(db.Primary, Items(0, 30, "m"), Options(threshold), Ct);
        Assert.Equal((20L, 10L), (result.Inserted, result.Updated));
        Assert.Equal(30L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE name LIKE 'm%'"));
    }

    [Fact]
    public async Task The_same_name_on_two_search_paths_reaches_each_connections_own_table()
    {
        var other = db.Schema + "_b";
        await db.ExecAsync($"DROP SCHEMA IF EXISTS {other} CASCADE; CREATE SCHEMA {other}");
        try
        {
            await CreateTableAsync("same");
            await db.ExecAsync($"CREATE TABLE {other}.same (key text PRIMARY KEY, name text NOT NULL, score int NOT NULL)");
            var upsert = Upsert("same");
            foreach (var (schema, n) in new[] { (db.Schema, 5), (other, 7), (db.Schema, 11) })
            {
                // SET LOCAL inside the transaction: a session-level SET would not survive PgBouncer's transaction pooling.
                await using var connection = await db.Primary.OpenConnectionAsync(Ct);
                await using var tx = await connection.BeginTransactionAsync(Ct);
                await using (var set = new NpgsqlCommand($"SET LOCAL search_path = {schema}", connection, tx)) await set.ExecuteNonQueryAsync(Ct);
                await upsert.ExecuteAsync(connection, tx, Items(0, n), cancellationToken: Ct);
                await tx.CommitAsync(Ct);
            }
            Assert.Equal(11L, await db.ScalarAsync<long>($"SELECT count(*) FROM {db.Schema}.same"));
            Assert.Equal(7L, await db.ScalarAsync<long>($"SELECT count(*) FROM {other}.same"));
        }
        finally
        {
            await db.ExecAsync($"DROP SCHEMA IF EXISTS {other} CASCADE");
        }
    }

    [Fact]
    public async Task Concurrent_calls_on_many_tables_each_write_their_own_table()
    {
        var tables = new List<string>();
        for (var t = 0; t < 12; t++) tables.Add(await CreateTableAsync());
        // Every table upserted by four callers at once, twice (cold cache, then warm), on both paths; one table is
        // altered between the rounds while the others run.
        for (var round = 0; round < 2; round++)
        {
            var calls = tables.SelectMany(table => Enumerable.Range(0, 4).Select(async c =>
            {
                // Callers never share a key: overlapping atomic batches could deadlock, which is not what this tests.
                var rows = Items(c * 10_000, c % 2 == 0 ? 50 : 3_000, $"r{round}c{c}_");
                var result = await Upsert(table).ExecuteAsync(db.Primary, rows, Options(c % 2 == 0 ? 10_000 : 0), Ct);
                Assert.Equal(rows.Count, result.RowsReceived);
                Assert.Equal(rows.Count, result.Inserted + result.Updated);
            })).ToList();
            if (round == 1) calls.Add(db.ExecAsync($"ALTER TABLE {tables[0]} ADD COLUMN extra int"));
            await Task.WhenAll(calls);
        }
        foreach (var table in tables)
        {
            Assert.Equal(2L * 50 + 2 * 3_000, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
        }
    }
}
