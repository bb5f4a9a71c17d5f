using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres.BulkUpsert;
using Polystore.Postgres.Querying;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Tests;

/// <summary>Hostile and careless inputs across the public API: each is refused where it is given, with a message naming it.</summary>
public sealed class ApiInputTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<string> CreateUsersAsync(string extra = "")
    {
        var table = $"{db.Schema}.users_{Guid.NewGuid():N}"[..(db.Schema.Length + 15)];
        await db.ExecAsync($"CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL{extra})");
        return table;
    }

    private static IEnumerable<UserRow> Users(int count) => Enumerable.Range(0, count).Select(i => new UserRow($"u{i}@example.com", $"n{i}", 0));

    private static PostgresBulkUpsertDefinition<UserRow> Upsert(string table) =>
        PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).OnConflict("email").Build();

    public static TheoryData<string> ImpossibleTableNames =>
    [
        "us\0ers", "public.us\0ers", "pub\0lic.users", new string('a', 64), $"public.{new string('a', 64)}", $"{new string('s', 64)}.users",
        new string('é', 32), new string('a', 1_000_000),
    ];

    [Theory]
    [MemberData(nameof(ImpossibleTableNames))]
    public void A_table_name_no_table_can_have_is_refused_where_it_is_given(string table)
    {
        foreach (var start in new Action[] { () => KeysetQuery.From(table), () => Ranking.From(table), () => PostgresBulkUpsert.Into<UserRow>(table) })
        {
            var e = Assert.Throws<ArgumentException>(start);
            Assert.Equal("table", e.ParamName);
            Assert.True(e.Message.Contains("NUL", StringComparison.Ordinal) || e.Message.Contains("at most 63", StringComparison.Ordinal), e.Message);
        }
    }

    [Fact]
    public async Task A_63_byte_name_is_found_and_a_longer_one_never_matches_its_truncation()
    {
        var name = new string('t', 63);
        await db.ExecAsync($"CREATE TABLE {db.Schema}.{name} (id bigint PRIMARY KEY)");
        var page = await KeysetQuery.From($"{db.Schema}.{name}").OrderBy("id").Build().PageAsync(db.Primary, null, 3, r => r.GetInt64(0), Ct);
        Assert.Empty(page.Items);
        // PostgreSQL cuts "ttt…t" + "x" to the 63-byte name when it creates a table; looking it up that way is refused.
        Assert.Throws<ArgumentException>(() => KeysetQuery.From($"{db.Schema}.{name}x"));
    }

    [Fact]
    public void Null_or_blank_column_names_in_lists_are_refused_where_they_are_given()
    {
        var cases = new (Action Call, string Parameter)[]
        {
            (() => PostgresBulkUpsert.Into<UserRow>("t").OnConflict(null!), "columns"),
            (() => PostgresBulkUpsert.Into<UserRow>("t").OnConflict("email", null!), "columns"),
            (() => PostgresBulkUpsert.Into<UserRow>("t").OnConflict(""), "columns"),
            (() => PostgresBulkUpsert.Into<UserRow>("t").Update(" "), "columns"),
            (() => KeysetQuery.From("t").Select("id", null!), "columns"),
            (() => Ranking.From("t").Select(""), "columns"),
            (() => Ranking.From("t").PartitionBy(null!, "region"), "columns"),
        };
        foreach (var (call, parameter) in cases)
            Assert.Equal(parameter, Assert.ThrowsAny<ArgumentException>(call).ParamName);
    }

    [Fact]
    public void A_filter_needs_a_column_and_a_known_operator_also_when_copied()
    {
        Assert.Equal("Column", Assert.Throws<ArgumentException>(() => new Filter(null!, FilterOperator.Equal, 1)).ParamName);
        Assert.Equal("Column", Assert.Throws<ArgumentException>(() => new Filter(" ", FilterOperator.Equal, 1)).ParamName);
        Assert.Equal("Operator", Assert.Throws<ArgumentOutOfRangeException>(() => new Filter("a", (FilterOperator)99, 1)).ParamName);
        var filter = Filter.Equal("a", 1);
        Assert.Throws<ArgumentException>(() => filter with { Column = "" });
        Assert.Throws<ArgumentOutOfRangeException>(() => filter with { Operator = (FilterOperator)(-1) });
    }

    [Fact]
    public void A_SET_expression_longer_than_any_allowed_one_is_refused_without_scanning_it()
    {
        // A lazy match before trailing spaces backtracks quadratically over them (1.6 s for 30,000): too long to be allowed, so not matched at all.
        var e = Assert.Throws<ArgumentException>(() => SetExpression.Parse("a = b" + new string(' ', 1_000_000) + "c"));
        Assert.Contains("no allow-listed assignment is longer than 256", e.Message, StringComparison.Ordinal);
        Assert.Equal("updated_at = now()", SetExpression.Parse("   updated_at   =   now ( )   ").ToString());
        Assert.Equal("version = version + 1", SetExpression.Parse("\tversion=version+1\n").ToString());
        Assert.Throws<ArgumentException>(() => SetExpression.Parse("a = now()" + new string(' ', 200) + "x"));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1_000_001)]
    [InlineData(int.MaxValue)]
    public async Task An_UnnestThreshold_out_of_range_is_refused_naming_it(int threshold)
    {
        var table = await CreateUsersAsync();
        var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Upsert(table).ExecuteAsync(db.Primary, Users(10), new PostgresBulkUpsertOptions { UnnestThreshold = threshold }, Ct));
        Assert.Equal("UnnestThreshold", e.ParamName);
    }

    [Fact]
    public async Task The_largest_UnnestThreshold_and_ChunkSize_cost_no_memory_by_themselves()
    {
        var table = await CreateUsersAsync();
        var unnest = await Upsert(table).ExecuteAsync(db.Primary, Users(10), new PostgresBulkUpsertOptions { UnnestThreshold = PostgresBulkUpsertOptions.MaxUnnestThreshold }, Ct);
        Assert.Equal(10, unnest.Inserted);
        foreach (var mode in new[] { PostgresBulkUpsertMode.Chunked, PostgresBulkUpsertMode.Parallel })
        {
            var r = await Upsert(table).ExecuteAsync(db.Primary, Users(20), new PostgresBulkUpsertOptions { Mode = mode, ChunkSize = int.MaxValue }, Ct);
            Assert.Equal((20L, 20L), (r.RowsReceived, r.Inserted + r.Updated));
        }
        Assert.Equal(20L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Theory]
    [InlineData(PostgresBulkUpsertMode.Atomic, 5)]
    [InlineData(PostgresBulkUpsertMode.Chunked, 25_000)]
    public async Task A_table_with_an_array_column_is_staged_for_every_batch_size(PostgresBulkUpsertMode mode, int rows)
    {
        // With a chunk of 20,000 the last chunk (5,000) is small enough for unnest, which cannot carry arrays.
        var table = await CreateUsersAsync(", tags text[]");
        var upsert = PostgresBulkUpsert.Into<UserRow>(table).Column("email", u => u.Email).Column("name", u => u.Name).Column("tags", u => new[] { u.Name, "x" }).OnConflict("email").Build();
        var r = await upsert.ExecuteAsync(db.Primary, Users(rows), new PostgresBulkUpsertOptions { Mode = mode, ChunkSize = 20_000 }, Ct);
        Assert.Equal(rows, r.Inserted);
        Assert.Equal((long)rows, await db.ScalarAsync<long>($"SELECT count(*) FROM {table} WHERE tags = ARRAY[name, 'x']"));
    }

    [Fact]
    public async Task A_transaction_that_does_not_fit_the_connection_is_refused_before_anything_is_sent()
    {
        var table = await CreateUsersAsync();
        await using var mine = await db.Primary.OpenConnectionAsync(Ct);
        await using var other = await db.Primary.OpenConnectionAsync(Ct);
        await using (var foreign = await other.BeginTransactionAsync(Ct))
            Assert.Equal("transaction", (await Assert.ThrowsAsync<ArgumentException>(() => Upsert(table).ExecuteAsync(mine, foreign, Users(3), cancellationToken: Ct))).ParamName);
        var done = await mine.BeginTransactionAsync(Ct);
        await done.CommitAsync(Ct);
        Assert.Equal("transaction", (await Assert.ThrowsAsync<ArgumentException>(() => Upsert(table).ExecuteAsync(mine, done, Users(3), cancellationToken: Ct))).ParamName);
        await using var closed = db.Primary.CreateConnection();
        await using var stale = await other.BeginTransactionAsync(Ct);
        Assert.Equal("connection", (await Assert.ThrowsAsync<ArgumentException>(() => Upsert(table).ExecuteAsync(closed, stale, Users(3), cancellationToken: Ct))).ParamName);
        Assert.Equal(0L, await db.ScalarAsync<long>($"SELECT count(*) FROM {table}"));
    }

    [Fact]
    public async Task A_failure_inside_the_callers_transaction_says_nothing_was_committed_by_it()
    {
        var table = await CreateUsersAsync();
        await using var connection = await db.Primary.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(Ct);
        var rows = Users(20).Select((u, i) => i == 7 ? null! : u);
        var e = await Assert.ThrowsAsync<PostgresBulkUpsertException>(() => Upsert(table).ExecuteAsync(connection, transaction, rows, cancellationToken: Ct));
        Assert.Contains("nothing was committed by it", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, e.RowsCommitted);
        Assert.IsType<ArgumentException>(e.InnerException);
    }

    [Fact]
    public void RecommendedIndex_quotes_the_table_as_given()
    {
        Assert.StartsWith("CREATE INDEX ON \"users; DROP TABLE x\" (", KeysetQuery.From("users; DROP TABLE x").OrderBy("id").Build().RecommendedIndex, StringComparison.Ordinal);
        Assert.StartsWith("CREATE INDEX ON \"app\".\"Users\" (\"id\")", KeysetQuery.From("app.Users").OrderBy("id").Build().RecommendedIndex, StringComparison.Ordinal);
    }

    [Fact]
    public void Settings_that_Npgsql_would_misread_are_refused_naming_the_key()
    {
        Assert.Throws<ArgumentNullException>(() => PostgresDataSources.Create(null!));
        Assert.Throws<ArgumentNullException>(() => PostgresDriverSettings.Build(null!));
        var comma = Assert.Throws<ArgumentException>(() => PostgresDriverSettings.Build(new PostgresSettings { Connection = new() { Host = "db.example,evil.example" } }));
        Assert.Contains("connection.host", comma.Message, StringComparison.Ordinal);
        var replica = Assert.Throws<ArgumentException>(() => PostgresDriverSettings.Build(new PostgresSettings { Replication = new() { ReadReplicas = [new() { Host = "a,b" }] } }));
        Assert.Contains("replication.read_replicas[0].host", replica.Message, StringComparison.Ordinal);
        var timeout = Assert.Throws<ArgumentOutOfRangeException>(() => PostgresDriverSettings.Build(new PostgresSettings { Connection = new() { CommandTimeout = 3_000_000 } }));
        Assert.Contains("connection.command_timeout", timeout.Message, StringComparison.Ordinal);
        Assert.Equal(PostgresDriverSettings.MaxCommandTimeout, PostgresDriverSettings.Build(new PostgresSettings { Connection = new() { CommandTimeout = PostgresDriverSettings.MaxCommandTimeout } }).CommandTimeout);
    }
}
