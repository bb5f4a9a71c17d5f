using Polystore.Postgres.BulkUpsert;

namespace Polystore.Postgres.Tests;

/// <summary>The order a batch of mostly new rows is staged in: its text key's first 16 UTF-8 bytes (C collation order).</summary>
public sealed class KeyOrderTests
{
    private static readonly TypedUpsertColumn<UserRow, string> Email = new("email", u => u.Email);

    [Fact]
    public void Keys_are_ordered_as_their_utf8_bytes_and_keys_sharing_16_bytes_keep_their_order()
    {
        var keys = new[]
        {
            "user10@example.com", "zoë@example.com", "user1@example.com", "Zed@example.com", "user2@example.com",
            "émile@example.com", "user", "a-very-long-shared-prefix-2", "a-very-long-shared-prefix-1", "", "日本@example.com", "user1",
        };
        var rows = keys.Select((k, i) => new UserRow(k, $"n{i}", i)).ToList();
        var sorted = KeyOrder.Sort(Email, rows, CancellationToken.None);
        Assert.NotNull(sorted);
        var got = sorted.Take(rows.Count).Select(r => r.Email).ToList();
        KeyOrder.Return(sorted, rows.Count);

        // Byte order of UTF-8 on the first 16 bytes; past them, the order the rows came in.
        static byte[] Prefix(string s) => System.Text.Encoding.UTF8.GetBytes(s).Take(16).ToArray();
        var expected = keys.Select((k, i) => (k, i)).OrderBy(x => Prefix(x.k), Comparer<byte[]>.Create((a, b) => a.AsSpan().SequenceCompareTo(b))).ThenBy(x => x.i).Select(x => x.k);
        Assert.Equal(expected, got);
        Assert.Equal(["a-very-long-shared-prefix-2", "a-very-long-shared-prefix-1"], got.Where(k => k.StartsWith("a-very")));
        Assert.Equal("", got[0]);
    }

    [Fact]
    public void A_null_row_or_key_and_an_unwanted_sort_give_nothing()
    {
        var rows = Enumerable.Range(0, 100).Select(i => new UserRow($"u{i}", "n", i)).ToList();
        Assert.Null(KeyOrder.Sort(Email, [.. rows, null!], CancellationToken.None));
        Assert.Null(KeyOrder.Sort(Email, [.. rows, new UserRow(null!, "n", 0)], CancellationToken.None));
        Assert.Null(KeyOrder.Sort(Email, rows, new CancellationToken(canceled: true)));
    }

    [Fact]
    public void Key_ranges_for_parallel_lanes_are_about_even_and_a_key_always_falls_in_one()
    {
        var rows = Enumerable.Range(0, 40_000).Select(i => new UserRow($"user{i}@example.com", "n", 0)).ToList();
        var bounds = KeyOrder.RangeBounds(Email, rows, 4);
        Assert.NotNull(bounds);
        Assert.Equal(3, bounds.Length);
        var sizes = rows.GroupBy(r => KeyOrder.RangeOf(bounds, r.Email)).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal([0, 1, 2, 3], sizes.Keys.Order());
        Assert.All(sizes.Values, n => Assert.InRange(n, 8_000, 12_000));
        // Ranges follow key order, and the same key (or a null one) always lands in the same range.
        var sorted = rows.Select(r => r.Email).Order(StringComparer.Ordinal).Select(k => KeyOrder.RangeOf(bounds, k)).ToList();
        Assert.Equal(sorted.Order(), sorted);
        Assert.Equal(KeyOrder.RangeOf(bounds, "user123@example.com"), KeyOrder.RangeOf(bounds, new string("user123@example.com".ToCharArray())));
        Assert.Equal(0, KeyOrder.RangeOf(bounds, null));
    }

    [Theory]
    [InlineData(0, 100_000, null, true)]
    [InlineData(25_000, 100_000, null, true)]
    [InlineData(25_001, 100_000, null, false)]
    [InlineData(100_000, 100_000, 0.2, false)]
    [InlineData(100_000, 100_000, -0.95, false)]
    [InlineData(100_000, 100_000, 0.95, true)]
    public void Only_a_batch_of_mostly_new_rows_or_for_a_table_stored_in_key_order_is_ordered(double tableRows, long rows, double? correlation, bool ordered) =>
        Assert.Equal(ordered, KeyOrder.Worth(rows, tableRows, correlation));
}
