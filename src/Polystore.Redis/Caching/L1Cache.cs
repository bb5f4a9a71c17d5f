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
    private long _invalidations;

    /// <summary>The clock reading <see cref="L1Entry.FreshUntil"/> is compared with.</summary>
    public long Now
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => clock.TickMs;
    }

    /// <summary>
    /// Counts invalidations (drops of any kind, local or heard from another instance); read it before reading Redis
    /// and hand it to <see cref="SetUnlessInvalidated"/>.
    /// </summary>
    public long Invalidations => Volatile.Read(ref _invalidations);

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
        // Add or replace, counting only what was added (a drop between a failed add and a plain set would re-add the
        // key uncounted, and the bound would drift).
        while (true)
        {
            if (_entries.TryAdd(key, entry))
            {
                if (Interlocked.Increment(ref _count) > _maxEntries) Trim();
                return;
            }
            if (_entries.TryGetValue(key, out var old) && _entries.TryUpdate(key, entry, old)) return;
        }
    }

    /// <summary>
    /// <see cref="Set"/> for a value read from Redis (or loaded) since <paramref name="invalidationsBefore"/> was read
    /// from <see cref="Invalidations"/>: an invalidation heard meanwhile may be about this very value, arrived before
    /// the copy existed to be dropped, so no copy is kept. Checked after storing too, as an invalidation can land
    /// between the check and the store.
    /// </summary>
    public void SetUnlessInvalidated(long invalidationsBefore, string key, object? value, bool missing, long logicalExpiryUnixMs, IReadOnlyList<string>? tags)
    {
        if (Invalidations != invalidationsBefore) return;
        Set(key, value, missing, logicalExpiryUnixMs, tags);
        if (Invalidations != invalidationsBefore) Evict(key);
    }

    public void Drop(string key)
    {
        Interlocked.Increment(ref _invalidations);
        Evict(key);
    }

    public void DropPrefix(string keyPrefix)
    {
        Interlocked.Increment(ref _invalidations);
        foreach (var k in _entries.Keys)
            if (k.StartsWith(keyPrefix, StringComparison.Ordinal)) Evict(k);
    }

    public void DropTagged(string tag)
    {
        Interlocked.Increment(ref _invalidations);
        foreach (var (k, e) in _entries)
            if (e.Tags is { } tags && Array.IndexOf(tags, tag) >= 0) Evict(k);
    }

    public void Clear()
    {
        Interlocked.Increment(ref _invalidations);
        foreach (var k in _entries.Keys) Evict(k);
    }

    private void Evict(string key)
    {
        if (_entries.TryRemove(key, out _)) Interlocked.Decrement(ref _count);
    }

    private void Trim()
    {
        var now = clock.TickMs;
        foreach (var (k, e) in _entries)
            if (e.FreshUntil <= now) Evict(k);
        var excess = Volatile.Read(ref _count) - (_maxEntries * 9 / 10);
        foreach (var k in _entries.Keys)
        {
            if (excess-- <= 0) break;
            Evict(k);
        }
    }
}
