using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Polystore.Postgres.BulkUpsert;

/// <summary>
/// Puts an in-memory batch with one text conflict key in the order of its keys' first 16 UTF-8 bytes, which is the
/// order of a unique index on that key under the C collation (and close to it under others).
/// </summary>
/// <remarks>
/// Only a batch of mostly new rows (the table holds at most a quarter as many rows as the batch) or one for a table
/// stored in key order (pg_stats' correlation of the key at least 0.9) is ordered. Updates run in the batch's order,
/// and each fetches its row's page and adds index entries beside the row's old ones: a batch that came in the order
/// the table was filled in measured 10-15% slower once reordered against it, and a reordered batch is aligned with a
/// table stored in key order. The table's size and correlation come back with the CREATE of the staging table; the sort
/// starts beside that round trip only where the table's last batch was ordered (else after it, when wanted).
/// Why: the MERGE inserts the rows it does not match in the staging table's order, and each insert goes down the
/// key's unique index. In key order those inserts land next to each other (on an empty table, at the index's right
/// edge, which PostgreSQL keeps a fast path for); in any other order each lands on a page of its own. On 100k new
/// e-mail keys the MERGE took ~400 ms staged in key order against ~455 ms staged in the order the rows came.
/// A 16-byte prefix is enough to order nearly every real key and sorts as fixed-size integers (a radix sort, a few
/// ms for 100k rows, on the thread pool); keys that share the prefix keep their order.
/// </remarks>
internal static class KeyOrder
{
    // Per table (the catalog cache's key): whether its last orderable batch was ordered. Bounded like that cache.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> LastWanted = new(StringComparer.Ordinal);

    /// <summary>Whether the last orderable batch for the table was ordered (true when there was none).</summary>
    public static bool WantedLastTime(string tableKey) => LastWanted.GetValueOrDefault(tableKey, true);

    /// <summary>Records whether a batch for the table was ordered (see <see cref="WantedLastTime"/>).</summary>
    public static void Remember(string tableKey, bool wanted)
    {
        if (LastWanted.Count >= 1024 && !LastWanted.ContainsKey(tableKey)) LastWanted.Clear();
        LastWanted[tableKey] = wanted;
    }

    /// <summary>Fewer rows than this are left in their order: the index pages they touch stay cached anyway.</summary>
    public const int MinRows = 10_000;

    /// <summary>Whether batches of <paramref name="keys"/> are worth ordering: one conflict column read as a string.</summary>
    public static bool Applies<T>(UpsertColumn<T>[] keys) => keys.Length == 1 && keys[0].ValueType == typeof(string);

    /// <summary>
    /// Whether a batch of <paramref name="rows"/> is worth ordering against a table of about <paramref name="tableRows"/>
    /// rows whose key has the physical <paramref name="correlation"/>: when it is mostly new rows, or when the table's
    /// rows are stored in key order (then the updates follow the table's pages too).
    /// </summary>
    public static bool Worth(long rows, double tableRows, double? correlation) => tableRows * 4 <= rows || correlation >= 0.9;

    /// <summary>
    /// The rows in key order, in a pooled array of which the first <c>rows.Count</c> items count (give it back with
    /// <see cref="Return"/>); null when a row or its key is null or a key cannot be read (the COPY then reports it),
    /// or when <paramref name="unwanted"/> is cancelled (then nothing is kept).
    /// </summary>
    public static T[]? Sort<T>(UpsertColumn<T> key, IReadOnlyCollection<T> rows, CancellationToken unwanted)
    {
        var count = rows.Count;
        var items = ArrayPool<T>.Shared.Rent(count);
        var entries = ArrayPool<Entry>.Shared.Rent(count);
        var spare = ArrayPool<Entry>.Shared.Rent(count);
        try
        {
            var n = 0;
            foreach (var row in rows)
            {
                // An unwanted sort stops within a few thousand rows instead of taking a core from the COPY.
                if (n == count || row is null || key.Text(row) is not { } text || ((n & 4095) == 0 && unwanted.IsCancellationRequested))
                {
                    Return(items, n);
                    return null;
                }
                entries[n] = new Entry(Prefix(text), n);
                items[n++] = row;
            }
            if (n != count || unwanted.IsCancellationRequested)
            {
                Return(items, n);
                return null;
            }
            var sorted = RadixSort(entries.AsSpan(0, n), spare.AsSpan(0, n), unwanted);
            if (unwanted.IsCancellationRequested)
            {
                Return(items, n);
                return null;
            }
            // Rows follow their entries: the sorted positions are read from one array while the other is filled.
            var ordered = ArrayPool<T>.Shared.Rent(count);
            for (var i = 0; i < n; i++) ordered[i] = items[sorted[i].Index];
            Return(items, n);
            return ordered;
        }
        catch (Exception)
        {
            Return(items, count);
            return null;
        }
        finally
        {
            ArrayPool<Entry>.Shared.Return(entries);
            ArrayPool<Entry>.Shared.Return(spare);
        }
    }

    /// <summary>
    /// Bounds that split a collection's keys into <paramref name="ranges"/> ranges of about equal size, read from a
    /// sample of up to 4,096 keys (null when a sampled row or key is null). See <see cref="RangeOf"/>.
    /// </summary>
    public static UInt128[]? RangeBounds<T>(UpsertColumn<T> key, IReadOnlyCollection<T> rows, int ranges)
    {
        var stride = Math.Max(1, rows.Count / 4096);
        var sample = new List<UInt128>(Math.Min(rows.Count, 4096) + 1);
        var i = 0;
        foreach (var row in rows)
        {
            if (i++ % stride != 0) continue;
            if (row is null || key.Text(row) is not { } text) return null;
            sample.Add(Prefix(text));
        }
        sample.Sort();
        return [.. Enumerable.Range(1, ranges - 1).Select(r => sample[r * sample.Count / ranges])];
    }

    /// <summary>The range of <paramref name="key"/> among <paramref name="bounds"/> (equal keys always share one; a null key goes to the first).</summary>
    public static int RangeOf(UInt128[] bounds, string? key)
    {
        if (key is null) return 0;
        var prefix = Prefix(key);
        var range = 0;
        while (range < bounds.Length && bounds[range] <= prefix) range++;
        return range;
    }

    // The first 16 bytes of the text's UTF-8, big-endian and zero-padded (a key that is a prefix of another sorts first).
    private static UInt128 Prefix(string text)
    {
        var chars = text.AsSpan(0, Math.Min(text.Length, 16));
        if (System.Text.Ascii.IsValid(chars))
        {
            UInt128 value = 0;
            for (var i = 0; i < 16; i++) value = (value << 8) | (i < chars.Length ? (byte)chars[i] : 0u);
            return value;
        }
        Span<byte> encoded = stackalloc byte[48]; // 16 chars are at most 48 UTF-8 bytes
        encoded.Clear();
        Encoding.UTF8.GetBytes(chars, encoded);
        return BinaryPrimitives.ReadUInt128BigEndian(encoded);
    }

    // Least-significant byte first, stable, one pass per byte of the prefix; a byte every key shares (the "user" of
    // "user123@...") is found by its histogram and skipped. Returns whichever of the two spans holds the result.
    // Unwanted, it stops at the next pass (the result is then unordered): on 100k rows the passes take 10-20 ms, which
    // an unwanted sort would otherwise spend beside the COPY it no longer serves.
    private static Span<Entry> RadixSort(Span<Entry> entries, Span<Entry> spare, CancellationToken unwanted)
    {
        Span<int> counts = stackalloc int[256];
        for (var shift = 0; shift < 128 && !unwanted.IsCancellationRequested; shift += 8)
        {
            counts.Clear();
            foreach (ref readonly var e in entries) counts[(int)(byte)(e.Prefix >> shift)]++;
            if (counts.Contains(entries.Length)) continue;
            for (int b = 0, sum = 0; b < 256; b++) (counts[b], sum) = (sum, sum + counts[b]);
            foreach (ref readonly var e in entries) spare[counts[(int)(byte)(e.Prefix >> shift)]++] = e;
            var swap = entries;
            entries = spare;
            spare = swap;
        }
        return entries;
    }

    private readonly record struct Entry(UInt128 Prefix, int Index);

    /// <summary>Gives back an array from <see cref="Sort"/>, cleared so the pool holds no rows.</summary>
    public static void Return<T>(T[] items, int count)
    {
        items.AsSpan(0, Math.Min(count, items.Length)).Clear();
        ArrayPool<T>.Shared.Return(items);
    }
}
