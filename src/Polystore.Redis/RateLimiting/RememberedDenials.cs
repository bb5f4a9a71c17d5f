using System.Collections.Concurrent;
using System.Diagnostics;

namespace Polystore.Redis.RateLimiting;

/// <summary>
/// Denials this process received, kept per key until the entry whose leaving frees the permits leaves the window
/// (at most <see cref="RedisSlidingWindowOptions.RememberDenialsFor"/>), so a key known to be full is answered
/// without a round trip. Exact: in a sliding log the permits in use only fall when entries leave the window
/// (which is what the remembered retry-after waits for) or are given back. A give-back by this process forgets
/// the key; one by another process, or a key deleted by hand, is seen once the memory ends, so the error is
/// only ever a denial that Redis would have admitted, never an admission over the limit.
/// </summary>
/// <remarks>
/// The deadline is counted from when the batch was sent, before Redis took the decision, so it never outlasts
/// the real one. Bounded: past <see cref="Capacity"/> keys, the expired ones are dropped, and all if that is not
/// enough (a forgotten denial only costs the next call its round trip).
/// </remarks>
internal sealed class RememberedDenials(TimeSpan maxAge)
{
    public const int Capacity = 65_536;

    private readonly long _maxAgeTicks = (long)(maxAge.TotalSeconds * Stopwatch.Frequency);
    private readonly ConcurrentDictionary<string, Denial> _byKey = new(StringComparer.Ordinal);
    private int _count; // kept by hand: ConcurrentDictionary.Count takes every lock
    private int _sweeping;
    private long _answered;

    public bool Enabled => _maxAgeTicks > 0;

    /// <summary>Decisions answered from memory (for tests and benchmarks).</summary>
    public long Answered => Interlocked.Read(ref _answered);

    /// <summary>Keys remembered now (for tests).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>True, with the denial, when <paramref name="key"/> is known to have no room for <paramref name="permits"/> now.</summary>
    public bool TryAnswer(string key, int permits, out RateLimitDecision decision)
    {
        decision = default;
        if (!_byKey.TryGetValue(key, out var denial) || denial.Permits != permits) return false;
        var now = Stopwatch.GetTimestamp();
        if (now >= denial.Until) return false;
        var elapsed = Stopwatch.GetElapsedTime(denial.SentAt, now);
        // The window only filled further since: what was left then is at most what is left now, and the reset
        // (when the newest entry leaves) is at least what it was.
        // RetryAfter is Redis's wait counted down, not the memory's end: the memory may end sooner (RememberDenialsFor).
        decision = new RateLimitDecision(false, denial.Remaining, Stopwatch.GetElapsedTime(now, denial.RetryAt),
            denial.Reset > elapsed ? denial.Reset - elapsed : TimeSpan.Zero, denial.ServerTime + (long)elapsed.TotalMicroseconds);
        Interlocked.Increment(ref _answered);
        return true;
    }

    /// <summary>Keeps a denial Redis sent for a batch sent at <paramref name="sentAt"/> (a <see cref="Stopwatch"/> timestamp).</summary>
    public void Remember(string key, int permits, RateLimitDecision decision, long sentAt)
    {
        if (decision.Allowed || decision.IsFallback || permits == 0 || decision.RetryAfter <= TimeSpan.Zero) return;
        var wait = (long)(decision.RetryAfter.TotalSeconds * Stopwatch.Frequency);
        var denial = new Denial(permits, decision.Remaining, sentAt + Math.Min(wait, _maxAgeTicks), sentAt + wait, sentAt, decision.Reset, decision.ServerTimeMicroseconds);
        // Add or replace, counting only what was added: a Forget between a failed add and a plain set would re-add the
        // key uncounted, and the count would drift below the entries it bounds.
        while (true)
        {
            if (_byKey.TryAdd(key, denial))
            {
                if (Interlocked.Increment(ref _count) > Capacity) Sweep();
                return;
            }
            if (_byKey.TryGetValue(key, out var old) && _byKey.TryUpdate(key, denial, old)) return;
        }
    }

    /// <summary>Forgets <paramref name="key"/> (permits were given back on it).</summary>
    public void Forget(string key)
    {
        if (_byKey.TryRemove(key, out _)) Interlocked.Decrement(ref _count);
    }

    private void Sweep()
    {
        if (Interlocked.Exchange(ref _sweeping, 1) == 1) return;
        try
        {
            var now = Stopwatch.GetTimestamp();
            foreach (var entry in _byKey)
                if (now >= entry.Value.Until && _byKey.TryRemove(entry)) Interlocked.Decrement(ref _count);
            if (Volatile.Read(ref _count) <= Capacity / 2) return;
            foreach (var entry in _byKey)
                if (_byKey.TryRemove(entry)) Interlocked.Decrement(ref _count);
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
        }
    }

    // Until: when this memory ends; RetryAt: when the permits Redis waited for are free (both Stopwatch timestamps).
    private sealed record Denial(int Permits, long Remaining, long Until, long RetryAt, long SentAt, TimeSpan Reset, long ServerTime);
}
