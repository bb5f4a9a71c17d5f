namespace Polystore.Postgres.BulkUpsert;

/// <summary>Remembers 64-bit hashes of conflict keys (up to a cap) to prove a batch has no duplicates.</summary>
internal sealed class KeyTracker<T>(UpsertColumn<T>[] keys)
{
    private const int Cap = 2_000_000;
    private HashSet<ulong>? _seen = [];

    /// <summary>True when no two rows can share a key (no hash collision, under the cap).</summary>
    public bool CertainlyUnique => _seen is not null;

    /// <summary>True when the rows' keys are proven unique.</summary>
    public static bool Unique(UpsertColumn<T>[] keys, IEnumerable<T> rows)
    {
        var tracker = new KeyTracker<T>(keys);
        foreach (var row in rows)
        {
            tracker.Add(UpsertRows.NotNull(row));
            if (!tracker.CertainlyUnique) return false;
        }
        return true;
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
