using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Polystore.Redis.Caching;

/// <summary>
/// The in-process layer (L1) of <see cref="RedisTieredCache"/>: copies of entries, each fresh for the shorter of
/// <see cref="RedisTieredCacheOptions.L1Ttl"/> and the entry's remaining TTL. With fail-safe, copies are kept
/// past that (stale) so they can be served when the factory fails. Bounded by
/// <see cref="RedisTieredCacheOptions.L1MaxEntries"/>: past it, expired copies go first, then about a tenth of
/// the rest in no particular order (cheap and bounded; not LRU).
/// </summary>
internal sealed class L1Cache(RedisTieredCacheOptions options, CacheClock clock)
{
    private readonly ConcurrentDictionary<string, L1Entry> _entries = new(StringComparer.Ordinal);
    private readonly long _ttlMs = (long)options.L1Ttl.TotalMilliseconds;
    private readonly int _maxEntries = options.L1MaxEntries;
    private readonly bool _keepStale = options.FailSafe;
    private readonly long _failSafeMaxAgeMs = (long)options.FailSafeMaxAge.TotalMilliseconds;
    private int _count; // kept by hand: ConcurrentDictionary.Count takes every lock

    /// <summary>The clock reading <see cref="L1Entry.FreshUntil"/> is compared with.</summary>
    public long Now
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => clock.TickMs;
    }

    /// <summary>The copy of <paramref name="key"/>, fresh or not.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(string key, [MaybeNullWhen(false)] out L1Entry entry) => _entries.TryGetValue(key, out entry);

    /// <summary>Stores a copy that stays fresh until the entry's logical expiry, at most for the L1 TTL.</summary>
    public void Set(string key, object? value, bool missing, long logicalExpiryUnixMs, IReadOnlyList<string>? tags)
    {
        var left = logicalExpiryUnixMs - clock.UnixMs;
        var freshFor = Math.Min(left, _ttlMs);
        // Served by fail-safe no longer than FailSafeMaxAge past the entry's logical expiry, as its Redis copy is.
        var staleFor = _keepStale ? left + _failSafeMaxAgeMs : freshFor;
        if (freshFor <= 0 && staleFor <= 0) return;
        var now = clock.TickMs;
        var entry = new L1Entry(value, missing, now + freshFor, now + staleFor, tags?.ToArray());
        if (_entries.TryAdd(key, entry))
        {
            if (Interlocked.Increment(ref _count) > _maxEntries) Trim();
        }
        else
        {
            _entries[key] = entry;
        }
    }

    public void Drop(string key)
    {
        if (_entries.TryRemove(key, out _)) Interlocked.Decrement(ref _count);
    }

    public void DropPrefix(string keyPrefix)
    {
        foreach (var k in _entries.Keys)
            if (k.StartsWith(keyPrefix, StringComparison.Ordinal)) Drop(k);
    }

    public void DropTagged(string tag)
    {
        foreach (var (k, e) in _entries)
            if (e.Tags is { } tags && Array.IndexOf(tags, tag) >= 0) Drop(k);
    }

    public void Clear()
    {
        foreach (var k in _entries.Keys) Drop(k);
    }

    private void Trim()
    {
        var now = clock.TickMs;
        foreach (var (k, e) in _entries)
            if (e.FreshUntil <= now) Drop(k);
        var excess = Volatile.Read(ref _count) - (_maxEntries * 9 / 10);
        foreach (var k in _entries.Keys)
        {
            if (excess-- <= 0) break;
            Drop(k);
        }
    }
}
