using System.Text;
using Npgsql;
using Polystore.Postgres.Querying;
using Polystore.Postgres.Schema;

namespace Polystore.Postgres.Tests;

public sealed class KeysetTests(KeysetFixture db) : IClassFixture<KeysetFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static long Id(NpgsqlDataReader r) => r.GetInt64(0);

    private KeysetQueryDefinition ScoreDescIdAsc(params Filter[] filters)
    {
        var b = KeysetQuery.From(db.Items).Select("id", "score").OrderBy("score", SortDirection.Descending).ThenBy("id");
        foreach (var f in filters) b.Where(f);
        return b.Build();
    }

    private async Task<List<long>> ExpectedAsync(string sql)
    {
        await using var cmd = db.Primary.CreateCommand(sql);
        await using var reader = await cmd.ExecuteReaderAsync(Ct);
        var ids = new List<long>();
        while (await reader.ReadAsync(Ct)) ids.Add(reader.GetInt64(0));
        return ids;
    }

    private static async Task<(List<long> Ids, List<KeysetPage<long>> Pages)> WalkForwardAsync(KeysetQueryDefinition q, NpgsqlDataSource ds, int size)
    {
        var ids = new List<long>();
        var pages = new List<KeysetPage<long>>();
        string? cursor = null;
        do
        {
            var page = await q.PageAsync(ds, cursor, size, Id, Ct);
            Assert.InRange(page.Items.Count, 1, size);
            ids.AddRange(page.Items);
            pages.Add(page);
            cursor = page.NextCursor;
        } while (cursor is not null);
        return (ids, pages);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(25)]
    [InlineData(100)]
    public async Task Mixed_directions_forward_then_backward_across_ties(int size)
    {
        var q = ScoreDescIdAsc();
        var expected = await ExpectedAsync($"SELECT id FROM {db.Items} ORDER BY score DESC, id");
        var (ids, pages) = await WalkForwardAsync(q, db.Primary, size);
        Assert.Equal(expected, ids);
        Assert.Null(pages[0].PreviousCursor);

        // Back from the last page, page by page, to the start.
        var back = new List<long>(pages[^1].Items);
        var cursor = pages[^1].PreviousCursor;
        var i = pages.Count - 2;
        while (cursor is not null)
        {
            var page = await q.PageAsync(db.Primary, cursor, size, Id, Ct);
            Assert.Equal(pages[i--].Items, page.Items);
            back.InsertRange(0, page.Items);
            cursor = page.PreviousCursor;
        }
        Assert.Equal(expected, back);
    }

    [Fact]
    public async Task Last_page_then_backwards_covers_everything()
    {
        var q = KeysetQuery.From(db.Items).Select("id").OrderBy("score").ThenBy("id").Where(Filter.Equal("region", "eu")).Build();
        var expected = await ExpectedAsync($"SELECT id FROM {db.Items} WHERE region = 'eu' ORDER BY score, id");
        var page = await q.LastPageAsync(db.Primary, 30, Id, Ct);
        Assert.Null(page.NextCursor);
        var all = new List<long>(page.Items);
        while (page.PreviousCursor is { } c)
        {
            page = await q.PageAsync(db.Primary, c, 30, Id, Ct);
            all.InsertRange(0, page.Items);
        }
        Assert.Equal(expected, all);
    }

    [Fact]
    public async Task Single_key_and_uniform_composite_keys_page_in_order()
    {
        var single = KeysetQuery.From(db.Items).Select("id").OrderBy("id", SortDirection.Descending).Build();
        Assert.Equal(await ExpectedAsync($"SELECT id FROM {db.Items} ORDER BY id DESC"), (await WalkForwardAsync(single, db.Primary, 33)).Ids);
        var uniform = KeysetQuery.From(db.Items).Select("id").OrderBy("score").ThenBy("id").Where(Filter.In("region", "us")).Build();
        Assert.Equal(await ExpectedAsync($"SELECT id FROM {db.Items} WHERE region = 'us' ORDER BY score, id"), (await WalkForwardAsync(uniform, db.Primary, 33)).Ids);
    }

    [Fact]
    public async Task Rows_inserted_between_fetches_neither_repeat_nor_skip_a_row()
    {
        await db.ExecAsync($"CREATE TABLE {db.Schema}.moving (id bigint PRIMARY KEY, score int NOT NULL); INSERT INTO {db.Schema}.moving SELECT g, g % 10 FROM generate_series(1, 100) g");
        var q = KeysetQuery.From($"{db.Schema}.moving").Select("id").OrderBy("score", SortDirection.Descending).ThenBy("id").Build();
        var first = await q.PageAsync(db.Primary, null, 20, Id, Ct);
        // Rows that sort before the cursor (score 9, high ids come later... score 100 first) and after it.
        await db.ExecAsync($"INSERT INTO {db.Schema}.moving VALUES (1000, 100), (1001, 9), (1002, 0), (1003, 8)");
        var rest = new List<long>();
        var cursor = first.NextCursor;
        while (cursor is not null)
        {
            var page = await q.PageAsync(db.Primary, cursor, 20, Id, Ct);
            rest.AddRange(page.Items);
            cursor = page.NextCursor;
        }
        Assert.Empty(first.Items.Intersect(rest));
        var everything = await ExpectedAsync($"SELECT id FROM {db.Schema}.moving ORDER BY score DESC, id");
        var lastOfFirst = everything.IndexOf(first.Items[^1]);
        Assert.Equal(everything.Skip(lastOfFirst + 1), rest);
        Assert.Contains(1002L, rest);
        Assert.DoesNotContain(1000L, rest);
    }

    [Fact]
    public async Task A_changed_or_forged_cursor_is_rejected_before_sql()
    {
        var q = ScoreDescIdAsc();
        var page = await q.PageAsync(db.Primary, null, 10, Id, Ct);
        var cursor = page.NextCursor!;
        var dot = cursor.IndexOf('.', StringComparison.Ordinal);

        // Change the payload (the key values) but keep the signature.
        var body = Encoding.UTF8.GetString(Convert.FromBase64String(Pad(cursor[..dot].Replace('-', '+').Replace('_', '/'))));
        var tampered = body.Replace("\"K\":[\"", "\"K\":[\"1", StringComparison.Ordinal);
        Assert.NotEqual(body, tampered);
        var forged = Convert.ToBase64String(Encoding.UTF8.GetBytes(tampered)).TrimEnd('=').Replace('+', '-').Replace('/', '_') + cursor[dot..];
        var e = await Assert.ThrowsAsync<InvalidCursorException>(() => q.PageAsync(db.Primary, forged, 10, Id, Ct));
        Assert.Contains("signature does not match", e.Message, StringComparison.Ordinal);

        var injected = body.Replace("\"K\":[\"", "\"K\":[\"1); DROP TABLE items; --", StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidCursorException>(() => q.PageAsync(db.Primary, Convert.ToBase64String(Encoding.UTF8.GetBytes(injected)) + cursor[dot..], 10, Id, Ct));
        await Assert.ThrowsAsync<InvalidCursorException>(() => q.PageAsync(db.Primary, "not-a-cursor", 10, Id, Ct));
        // Any other last character of either part, including those that differ only in bits no byte uses (which a
        // lenient base64 decoder reads as the same bytes): the cursor must come back exactly as it was issued.
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        foreach (var end in new[] { dot - 1, cursor.Length - 1 })
            foreach (var c in Alphabet.Where(c => c != cursor[end]))
            {
                var changed = cursor[..end] + c + cursor[(end + 1)..];
                var refused = await Assert.ThrowsAsync<InvalidCursorException>(() => q.PageAsync(db.Primary, changed, 10, Id, Ct));
                Assert.Contains("signature does not match", refused.Message, StringComparison.Ordinal);
            }
        await Assert.ThrowsAsync<InvalidCursorException>(() => q.PageAsync(db.Primary, "%%%.%%%", 10, Id, Ct));

        // Another key, or another query's cursor.
        var otherKey = KeysetQuery.From(db.Items).Select("id", "score").OrderBy("score", SortDirection.Descending).ThenBy("id").SignCursorsWith(new CursorSigner(new byte[32])).Build();
        await Assert.ThrowsAsync<InvalidCursorException>(() => otherKey.PageAsync(db.Primary, cursor, 10, Id, Ct));
        var filtered = ScoreDescIdAsc(Filter.Equal("region", "eu"));
        var e2 = await Assert.ThrowsAsync<InvalidCursorException>(() => filtered.PageAsync(db.Primary, cursor, 10, Id, Ct));
        Assert.Contains("different query", e2.Message, StringComparison.Ordinal);
        Assert.Equal(500L, await db.ScalarAsync<long>($"SELECT count(*) FROM {db.Items}"));
    }

    private static string Pad(string s) => s.PadRight(s.Length + (4 - s.Length % 4) % 4, '=');

    [Theory]
    [InlineData("score; DROP TABLE items")]
    [InlineData("score DESC")]
    [InlineData("\"score\"")]
    [InlineData("(SELECT 1)")]
    public async Task Injection_through_order_and_filter_identifiers_is_a_schema_error(string column)
    {
        var order = KeysetQuery.From(db.Items).OrderBy(column).ThenBy("id").Build();
        await Assert.ThrowsAsync<PostgresSchemaException>(() => order.PageAsync(db.Primary, null, 10, Id, Ct));
        var filter = KeysetQuery.From(db.Items).OrderBy("id").Where(Filter.Equal(column, 1)).Build();
        await Assert.ThrowsAsync<PostgresSchemaException>(() => filter.PageAsync(db.Primary, null, 10, Id, Ct));
        var table = KeysetQuery.From(column).OrderBy("id").Build();
        await Assert.ThrowsAsync<PostgresSchemaException>(() => table.PageAsync(db.Primary, null, 10, Id, Ct));
        Assert.Equal(500L, await db.ScalarAsync<long>($"SELECT count(*) FROM {db.Items}"));
    }

    [Fact]
    public async Task Non_unique_or_nullable_keys_and_oversized_pages_are_clear_errors()
    {
        var e = await Assert.ThrowsAsync<PostgresSchemaException>(() => KeysetQuery.From(db.Items).OrderBy("score").Build().PageAsync(db.Primary, null, 10, Id, Ct));
        Assert.Contains("not unique", e.Message, StringComparison.Ordinal);
        var n = await Assert.ThrowsAsync<PostgresSchemaException>(() => KeysetQuery.From(db.Items).OrderBy("region").ThenBy("id").Build().PageAsync(db.Primary, null, 10, Id, Ct));
        Assert.Contains("may be NULL", n.Message, StringComparison.Ordinal);
        var q = KeysetQuery.From(db.Items).OrderBy("id").MaxPageSize(50).Build();
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => q.PageAsync(db.Primary, null, 51, Id, Ct));
        Assert.Equal($"CREATE INDEX ON \"{db.Schema}\".\"items\" (\"region\", \"score\" DESC, \"id\")", ScoreDescIdAsc(Filter.Equal("region", "eu")).RecommendedIndex);
    }

    [Fact]
    public async Task A_created_cursor_jumps_to_a_key()
    {
        var q = ScoreDescIdAsc();
        var expected = await ExpectedAsync($"SELECT id FROM {db.Items} WHERE (score < 10) OR (score = 10 AND id > 130) ORDER BY score DESC, id LIMIT 5");
        var page = await q.PageAsync(db.Primary, q.CreateCursor(true, 10, 130L), 5, Id, Ct);
        Assert.Equal(expected, page.Items);
        Assert.Throws<ArgumentException>(() => q.CreateCursor(true, 10));
    }

    [Fact]
    public async Task Sixty_four_concurrent_walkers_see_the_same_rows()
    {
        var q = ScoreDescIdAsc(Filter.Equal("region", "eu"));
        var expected = await ExpectedAsync($"SELECT id FROM {db.Items} WHERE region = 'eu' ORDER BY score DESC, id");
        var walks = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => WalkForwardAsync(q, db.Primary, 10 + i)));
        Assert.All(walks, w => Assert.Equal(expected, w.Ids));
    }
}
