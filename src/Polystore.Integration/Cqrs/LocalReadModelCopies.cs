using System.Collections.Concurrent;
using Polystore.Integration.Projections;

namespace Polystore.Integration.Cqrs;

/// <summary>
/// The in-process copies of a <see cref="ReadModelCache{T}"/>. Copies are kept only while this process hears every
/// invalidation (its Redis channel subscription is confirmed and its connection up). Per document, versions only move
/// forward: a read that raced an invalidation (each one bumps an epoch) does not keep what it read, but leaves its
/// version behind as a floor, so another read that began later but saw an older version cannot put that back.
/// </summary>
internal sealed class LocalReadModelCopies<T>(TimeSpan ttl, int capacity, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private long _epoch;
    private long _nextSweep;
    private volatile bool _listening;

    // A copy (Model set) or a floor alone (Model null): the newest version this process knows of.
    private sealed record Entry(long Version, ReadModel<T>? Model, long ExpiresAt);

    /// <summary>Taken before a read of Redis or the store; passed back to <see cref="Offer"/>.</summary>
    public long Epoch => Interlocked.Read(ref _epoch);

    /// <summary>Whether copies are kept: only while every invalidation reaches this process.</summary>
    public bool Listening
    {
        get => _listening;
        set
        {
            _listening = value;
            Interlocked.Increment(ref _epoch); // a read in flight across the change keeps nothing
            _entries.Clear();
        }
    }

    public bool TryGet(string id, out ReadModel<T> model)
    {
        if (_listening && _entries.TryGetValue(id, out var entry))
        {
            if (entry.ExpiresAt <= time.GetTimestamp()) _entries.TryRemove(new KeyValuePair<string, Entry>(id, entry));
            else if (entry.Model is not null)
            {
                model = entry.Model;
                return true;
            }
        }
        model = null!;
        return false;
    }

    /// <summary>Keeps <paramref name="model"/>, read after <paramref name="epochBefore"/> was taken, unless an invalidation came since.</summary>
    public void Offer(ReadModel<T> model, long epochBefore)
    {
        if (!_listening) return;
        var now = time.GetTimestamp();
        if (_entries.Count >= capacity && !SweepExpired(now)) return;
        var expiresAt = now + (long)(ttl.TotalSeconds * time.TimestampFrequency);
        var raced = Epoch != epochBefore;
        var offered = new Entry(model.Version, raced ? null : model, expiresAt);
        var kept = _entries.AddOrUpdate(model.Id, offered, (_, existing) => Newer(existing, offered));
        // An invalidation between the check above and the store may have missed this copy: keep its version only.
        if (kept == offered && !raced && Epoch != epochBefore)
            _entries.TryUpdate(model.Id, offered with { Model = null }, offered);
    }

    /// <summary>Drops the copy of <paramref name="id"/> if it is older than <paramref name="version"/>.</summary>
    public void Invalidate(string id, long version)
    {
        Interlocked.Increment(ref _epoch);
        while (_entries.TryGetValue(id, out var entry) && entry.Version < version)
            if (_entries.TryUpdate(id, entry with { Version = version, Model = null }, entry)) return;
    }

    // The newer of two entries; at the same version a copy beats a floor.
    private static Entry Newer(Entry existing, Entry offered) =>
        existing.Version > offered.Version || (existing.Version == offered.Version && existing.Model is not null) ? existing : offered;

    // True when there is room after removing the expired entries; sweeps at most once per quarter TTL, so a working set
    // larger than the capacity costs a read nothing more than a miss.
    private bool SweepExpired(long now)
    {
        var next = Interlocked.Read(ref _nextSweep);
        if (now < next || Interlocked.CompareExchange(ref _nextSweep, now + (long)(ttl.TotalSeconds / 4 * time.TimestampFrequency), next) != next) return false;
        foreach (var (id, entry) in _entries)
            if (entry.ExpiresAt <= now) _entries.TryRemove(new KeyValuePair<string, Entry>(id, entry));
        return _entries.Count < capacity;
    }
}
