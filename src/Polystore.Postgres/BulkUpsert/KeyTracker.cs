namespace Polystore.Postgres.BulkUpsert;

/// <summary>Remembers 64-bit hashes of conflict keys (up to a cap) to prove a batch has no duplicates.</summary>
internal sealed class KeyTracker<T>(UpsertColumn<T>[] keys)
{
    private const int Cap = 2_000_000;
    private HashSet<ulong>? _seen = [];

    /// <summary>True when no two rows can share a key (no hash collision, under the cap).</summary>
    public bool CertainlyUnique => _seen is not null;

    /// <summary>True when the rows' keys are proven unique.</summary>
    /// <remarks>
    /// Hashes into a pooled array, sorts it and looks for equal neighbours: no allocation per call, where a set of
    /// 100k hashes put ~2 MB on the large object heap each call (and grew it about 17 times on the way).
    /// </remarks>
    public static bool Unique(UpsertColumn<T>[] keys, IReadOnlyCollection<T> rows)
    {
        var count = rows.Count;
        if (count > Cap) return false;
        var hashes = System.Buffers.ArrayPool<ulong>.Shared.Rent(Math.Max(count, 1));
        try
        {
            var n = 0;
            foreach (var row in rows)
            {
                if (n == hashes.Length) return false;
                hashes[n++] = Hash(keys, UpsertRows.NotNull(row));
            }
            var span = hashes.AsSpan(0, n);
            span.Sort();
            for (var i = 1; i < span.Length; i++)
                if (span[i] == span[i - 1]) return false;
            return true;
        }
        finally
        {
            System.Buffers.ArrayPool<ulong>.Shared.Return(hashes);
        }
    }

    public void Add(T row)
    {
        if (_seen is null) return;
        if (!_seen.Add(Hash(keys, row)) || _seen.Count > Cap) _seen = null;
    }

    /// <summary>A 64-bit hash of the row's conflict key (equal keys, equal hashes).</summary>
    public static ulong Hash(UpsertColumn<T>[] keys, T row)
    {
        var hash = 14695981039346656037UL;
        foreach (var k in keys) hash = (hash ^ k.Hash(row)) * 1099511628211UL + 0x9E3779B97F4A7C15UL;
        return hash;
    }
}
