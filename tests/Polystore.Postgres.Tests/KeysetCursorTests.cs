using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Npgsql;
using Polystore.Postgres.Querying;

namespace Polystore.Postgres.Tests;

/// <summary>
/// Every cursor the library issues is accepted back, whatever the keys' length and script; the cap on cursors follows
/// from <see cref="KeysetQueryDefinition.MaxKeyBytes"/>, keys too long for it are refused when the cursor would be
/// issued, and oversized or forged cursors are refused before any SQL.
/// </summary>
public sealed class KeysetCursorTests(SchemaFixture db) : IClassFixture<SchemaFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Text(NpgsqlDataReader r) => r.GetString(0);

    /// <summary>A table of 10 rows whose text keys are <paramref name="prefix"/> and a 4-digit number.</summary>
    private async Task<string> KeysAsync(string prefix, string? second = null)
    {
        var table = $"{db.Schema}.k_{Guid.NewGuid():N}"[..(db.Schema.Length + 12)];
        await db.ExecAsync($"CREATE TABLE {table} (k text PRIMARY KEY, k2 text NOT NULL)");
        await using var insert = db.Primary.CreateCommand($"INSERT INTO {table} (k, k2) SELECT $1 || lpad(g::text, 4, '0'), $2 FROM generate_series(1, 10) g");
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = prefix });
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = second ?? "" });
        await insert.ExecuteNonQueryAsync(Ct);
        return table;
    }

    /// <summary>Walks forward 3 rows a page to the end, then back to the start; every cursor must come back.</summary>
    private static async Task<int> WalkAsync(KeysetQueryDefinition query, NpgsqlDataSource source)
    {
        var pages = new List<KeysetPage<string>> { await query.PageAsync(source, null, 3, Text, Ct) };
        while (pages[^1].NextCursor is { } next)
        {
            Assert.InRange(next.Length, 1, query.MaxCursorLength);
            pages.Add(await query.PageAsync(source, next, 3, Text, Ct));
        }
        var back = pages[^1];
        for (var i = pages.Count - 2; back.PreviousCursor is { } previous; i--)
        {
            Assert.InRange(previous.Length, 1, query.MaxCursorLength);
            back = await query.PageAsync(source, previous, 3, Text, Ct);
            Assert.Equal(pages[i].Items, back.Items);
        }
        return pages.Sum(p => p.Items.Count);
    }

    [Fact]
    public async Task Cursors_created_for_time_and_interval_keys_start_exactly_after_them()
    {
        var table = $"{db.Schema}.t_{Guid.NewGuid():N}"[..(db.Schema.Length + 12)];
        await db.ExecAsync($"CREATE TABLE {table} (id int PRIMARY KEY, at time NOT NULL UNIQUE, span interval NOT NULL UNIQUE)");
        await db.ExecAsync($"INSERT INTO {table} VALUES (1, '10:11:05', '1 day 00:00:05'), (2, '10:11:10', '1 day 02:00:01'), (3, '10:11:13', '1 day 02:00:03'), (4, '10:12:00', '2 days'), (5, '11:00:00', '3 days')");
        static int Id(NpgsqlDataReader r) => r.GetInt32(0);

        var byTime = KeysetQuery.From(table).Select("id").OrderBy("at").Build();
        var afterTime = await byTime.PageAsync(db.Primary, byTime.CreateCursor(true, new TimeOnly(10, 11, 12)), 10, Id, Ct);
        Assert.Equal([3, 4, 5], afterTime.Items);

        var bySpan = KeysetQuery.From(table).Select("id").OrderBy("span").Build();
        var afterSpan = await bySpan.PageAsync(db.Primary, bySpan.CreateCursor(true, new TimeSpan(1, 2, 0, 2)), 10, Id, Ct);
        Assert.Equal([3, 4, 5], afterSpan.Items);
    }

    [Fact]
    public async Task A_cursor_is_refused_by_a_query_whose_filter_differs_only_below_the_second()
    {
        var table = $"{db.Schema}.f_{Guid.NewGuid():N}"[..(db.Schema.Length + 12)];
        await db.ExecAsync($"CREATE TABLE {table} (id int PRIMARY KEY, at timestamptz NOT NULL)");
        await db.ExecAsync($"INSERT INTO {table} SELECT g, '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 ms' FROM generate_series(1, 1000) g");
        var t = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        KeysetQueryDefinition Since(DateTime since) => KeysetQuery.From(table).Select("id").OrderBy("id").Where(new Filter("at", FilterOperator.Greater, since)).Build();
        var a = Since(t.AddMilliseconds(100));
        var b = Since(t.AddMilliseconds(900));
        var page = await a.PageAsync(db.Primary, null, 5, r => r.GetInt32(0), Ct);
        await Assert.ThrowsAsync<InvalidCursorException>(() => b.PageAsync(db.Primary, page.NextCursor, 5, r => r.GetInt32(0), Ct));
    }

    public static TheoryData<string, string> LongKeys => new()
    {
        { "3,100 ASCII characters", new string('x', 3_096) },
        { "3,100 two-byte characters", new string('é', 3_096) },
        { "3,100 three-byte characters", new string('漢', 3_096) },
        { "3,100 four-byte characters", string.Concat(Enumerable.Repeat("😀", 3_096)) },
        { "3,100 control characters (6 bytes each in JSON)", new string('\u0001', 3_096) },
        { "quotes and backslashes", string.Concat(Enumerable.Repeat("\"\\", 1_548)) },
    };

    [Theory]
    [MemberData(nameof(LongKeys))]
    public async Task Cursors_over_long_keys_of_any_script_are_accepted_back(string what, string prefix)
    {
        var table = await KeysAsync(prefix);
        var query = KeysetQuery.From(table).Select("k").OrderBy("k").Build();
        Assert.True(10 == await WalkAsync(query, db.Primary), what);
        var last = await query.LastPageAsync(db.Primary, 3, Text, Ct);
        Assert.Equal(3, (await query.PageAsync(db.Primary, last.PreviousCursor, 3, Text, Ct)).Items.Count);
    }

    [Fact]
    public async Task Cursors_over_two_long_keys_are_accepted_back()
    {
        var table = await KeysAsync(new string('y', 1_600), new string('z', 1_600));
        var query = KeysetQuery.From(table).Select("k").OrderBy("k2", SortDirection.Descending).ThenBy("k").Build();
        Assert.Equal(10, await WalkAsync(query, db.Primary));
    }

    [Fact]
    public async Task Keys_exactly_at_MaxKeyBytes_in_the_worst_encoding_are_accepted_back_in_both_directions()
    {
        // Control characters are the worst case of the JSON inside a cursor; 996 + 4 digits = MaxKeyBytes exactly.
        var table = await KeysAsync(new string('\u0002', 996));
        var query = KeysetQuery.From(table).Select("k").OrderBy("k").MaxKeyBytes(1_000).Build();
        Assert.Equal(10, await WalkAsync(query, db.Primary));
        // The longest cursor there can be: a backward one (the longer flag) on such a key.
        var back = query.CreateCursor(false, new string('\u0001', 1_000));
        Assert.InRange(back.Length, query.MaxCursorLength - 2, query.MaxCursorLength);
        Assert.Empty((await query.PageAsync(db.Primary, back, 3, Text, Ct)).Items);
    }

    [Fact]
    public async Task A_cursor_for_a_page_past_the_end_is_accepted_back()
    {
        var table = await KeysAsync(new string('x', 3_096));
        var query = KeysetQuery.From(table).Select("k").OrderBy("k").Build();
        var beyond = await query.PageAsync(db.Primary, query.CreateCursor(true, new string('z', 3_100)), 3, Text, Ct);
        Assert.Empty(beyond.Items);
        Assert.Equal(3, (await query.PageAsync(db.Primary, beyond.PreviousCursor, 3, Text, Ct)).Items.Count);
    }

    [Fact]
    public async Task A_row_whose_keys_exceed_MaxKeyBytes_fails_the_page_naming_the_setting()
    {
        var table = await KeysAsync(new string('x', 997));
        var query = KeysetQuery.From(table).Select("k").OrderBy("k").MaxKeyBytes(1_000).Build();
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => query.PageAsync(db.Primary, null, 3, Text, Ct));
        Assert.Contains("1,001 bytes", e.Message, StringComparison.Ordinal);
        Assert.Contains("MaxKeyBytes (1,000)", e.Message, StringComparison.Ordinal);
        // A page that needs no cursor for that row still works: all ten rows, no next page.
        Assert.Equal(10, (await query.PageAsync(db.Primary, null, 10, Text, Ct)).Items.Count);
        var created = Assert.Throws<ArgumentException>(() => query.CreateCursor(true, new string('x', 1_001)));
        Assert.Equal("keyValues", created.ParamName);
        Assert.Contains("MaxKeyBytes", created.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Oversized_cursors_are_refused_before_any_sql()
    {
        var query = KeysetQuery.From("nowhere").OrderBy("id").Build();
        // Nothing listens on port 1: reaching the server at all would be a connection error, not a cursor error.
        await using var unreachable = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Username=x;Password=y;Timeout=1");
        foreach (var length in new[] { query.MaxCursorLength + 1, 10_000_000 })
        {
            var e = await Assert.ThrowsAsync<InvalidCursorException>(() => query.PageAsync(unreachable, new string('A', length - 5) + ".AAAA", 3, r => 0, Ct));
            Assert.Contains("longer", e.Message, StringComparison.Ordinal);
        }
        await Assert.ThrowsAsync<InvalidCursorException>(() => query.PageAsync(unreachable, new string('A', query.MaxCursorLength - 5) + ".AAAA", 3, r => 0, Ct));
    }

    [Fact]
    public async Task A_cursor_with_escaped_non_ascii_keys_is_still_accepted()
    {
        // The payload as System.Text.Json writes it by default (every non-ASCII character escaped), signed with the query's key.
        var table = await KeysAsync("é");
        var key = RandomNumberGenerator.GetBytes(32);
        var query = KeysetQuery.From(table).Select("k").OrderBy("k").SignCursorsWith(new CursorSigner(key)).Build();
        var issued = (await query.PageAsync(db.Primary, null, 3, Text, Ct)).NextCursor!;
        var body = Convert.FromBase64String(Pad(issued[..issued.IndexOf('.', StringComparison.Ordinal)].Replace('-', '+').Replace('_', '/')));
        var escaped = JsonSerializer.SerializeToUtf8Bytes(JsonDocument.Parse(body).RootElement);
        Assert.Contains("\\u00E9", Encoding.UTF8.GetString(escaped), StringComparison.Ordinal);
        var cursor = Base64Url(escaped) + "." + Base64Url(HMACSHA256.HashData(key, escaped));
        Assert.Equal(["é0004", "é0005", "é0006"], (await query.PageAsync(db.Primary, cursor, 3, Text, Ct)).Items);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1_048_577)]
    public void MaxKeyBytes_out_of_range_is_refused(int bytes)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => KeysetQuery.From("t").MaxKeyBytes(bytes));
        Assert.Equal("bytes", e.ParamName);
        Assert.Contains("MaxKeyBytes", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_cursor_cap_follows_MaxKeyBytes_and_the_number_of_keys()
    {
        var one = KeysetQuery.From("t").OrderBy("a").Build();
        var small = KeysetQuery.From("t").OrderBy("a").MaxKeyBytes(100).Build();
        var two = KeysetQuery.From("t").OrderBy("a").ThenBy("b").Build();
        Assert.Equal(KeysetQueryDefinition.DefaultMaxKeyBytes, one.MaxKeyBytes);
        Assert.True(small.MaxCursorLength < one.MaxCursorLength);
        Assert.True(two.MaxCursorLength > one.MaxCursorLength);
        // Worst case: 6 bytes of JSON per byte of key, then 4/3 for base64url, plus the frame and the signature.
        Assert.InRange(one.MaxCursorLength, 16_384 * 8, 16_384 * 8 + 200);
    }

    private static string Pad(string s) => s.PadRight(s.Length + (4 - s.Length % 4) % 4, '=');

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
