using System.Diagnostics;

namespace Polystore.Redis.Locking;

/// <summary>
/// Extends the auto-extended locks of one provider from one timer. Every lock of a provider has the same interval,
/// so the due times come in the order the locks were scheduled: a FIFO list ordered by due time (intrusive, the
/// locks are its nodes) and a one-shot timer armed for its head. Scheduling and removing a lock are O(1) under one
/// short lock, with no allocation and no timer, task or cancellation source per lock; a release only unlinks.
/// </summary>
/// <remarks>
/// The timer is re-armed only when it fires (for the new head) or when the list was idle, never on an acquire or a
/// release while it runs: removing the head leaves it armed for an earlier time, and firing early finds nothing
/// due and re-arms. Locks due within <see cref="_slack"/> of each other are extended on the same tick.
/// </remarks>
internal sealed class LockExtensionScheduler
{
    private readonly long _interval; // Stopwatch ticks
    private readonly long _slack;
    private readonly Lock _guard = new();
    private readonly Timer _timer;
    private RedisLock? _head;
    private RedisLock? _tail;
    private long _armedFor = long.MaxValue; // Stopwatch timestamp the timer fires at; MaxValue = not armed
    private int _count;

    public LockExtensionScheduler(TimeSpan interval)
    {
        _interval = (long)(interval.TotalSeconds * Stopwatch.Frequency);
        _slack = _interval / 8;
        _timer = new Timer(static s => ((LockExtensionScheduler)s!).Tick(), this, Timeout.Infinite, Timeout.Infinite);
    }

    /// <summary>Locks waiting for their next extension (for tests).</summary>
    internal int Count => Volatile.Read(ref _count);

    /// <summary>Schedules the next extension of <paramref name="held"/> one interval from now.</summary>
    public void Schedule(RedisLock held)
    {
        lock (_guard)
        {
            if (held.ExtensionScheduled || held.ExtensionStopped) return;
            // Taken under the lock, so due times increase along the list.
            var due = Stopwatch.GetTimestamp() + _interval;
            held.ExtensionDue = due;
            held.ExtensionPrev = _tail;
            held.ExtensionNext = null;
            if (_tail is null) _head = held;
            else _tail.ExtensionNext = held;
            _tail = held;
            held.ExtensionScheduled = true;
            _count++;
            if (due < _armedFor) Arm(due);
        }
    }

    /// <summary>Stops extending <paramref name="held"/>: unlinked if waiting, never scheduled again if being extended now.</summary>
    public void Remove(RedisLock held)
    {
        lock (_guard)
        {
            held.ExtensionStopped = true;
            if (!held.ExtensionScheduled) return;
            Unlink(held);
        }
    }

    private void Unlink(RedisLock held)
    {
        if (held.ExtensionPrev is { } prev) prev.ExtensionNext = held.ExtensionNext;
        else _head = held.ExtensionNext;
        if (held.ExtensionNext is { } next) next.ExtensionPrev = held.ExtensionPrev;
        else _tail = held.ExtensionPrev;
        held.ExtensionPrev = held.ExtensionNext = null;
        held.ExtensionScheduled = false;
        _count--;
    }

    // Must be called under _guard.
    private void Arm(long due)
    {
        _armedFor = due;
        var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
        _timer.Change(wait > TimeSpan.Zero ? (long)Math.Ceiling(wait.TotalMilliseconds) : 0, Timeout.Infinite);
    }

    private void Tick()
    {
        RedisLock? due = null; // the locks to extend now, linked through ExtensionNext
        lock (_guard)
        {
            _armedFor = long.MaxValue;
            var now = Stopwatch.GetTimestamp() + _slack;
            RedisLock? last = null;
            while (_head is { } h && h.ExtensionDue <= now)
            {
                Unlink(h);
                if (last is null) due = h;
                else last.ExtensionNext = h;
                last = h;
            }
            if (_head is { } next) Arm(next.ExtensionDue);
        }
        while (due is not null)
        {
            var held = due;
            due = held.ExtensionNext;
            held.ExtensionNext = null;
            // Each extension runs on its own; its completion schedules the next one (or not, once released or lost).
            _ = held.ExtendScheduledAsync();
        }
    }
}
