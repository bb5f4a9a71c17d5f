using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

/// <summary>
/// What one adapter knows locally about one key: its leases and the permits left as of its last decision (for
/// <see cref="RateLimiterStatistics"/>), the calls in progress and when it last admitted (for IdleDuration).
/// The count itself lives in Redis.
/// </summary>
internal sealed class KeyActivity
{
    private readonly int _limit;
    private readonly TimeSpan _window;
    private readonly TimeProvider _time;
    private long _successful;
    private long _failed;
    private long _remaining;
    private long _lastDecision;  // timestamp; 0 = none yet
    private long _lastAdmission; // timestamp; 0 = none yet
    private long _lastCall;      // timestamp the last call ended (creation at first)
    private int _inProgress;

    public KeyActivity(int limit, TimeSpan window, TimeProvider time)
    {
        _limit = limit;
        _window = window;
        _time = time;
        _remaining = limit;
        _lastCall = time.GetTimestamp();
    }

    /// <summary>
    /// Null while a call is in progress, and while permits admitted here may still be in the window (as the
    /// in-box limiters are not idle while permits are out); otherwise the time since both ended.
    /// </summary>
    public TimeSpan? IdleDuration
    {
        get
        {
            if (Volatile.Read(ref _inProgress) > 0) return null;
            var idle = _time.GetElapsedTime(Volatile.Read(ref _lastCall));
            var admitted = Volatile.Read(ref _lastAdmission);
            if (admitted != 0)
            {
                var sinceLeft = _time.GetElapsedTime(admitted) - _window;
                if (sinceLeft < TimeSpan.Zero) return null;
                if (sinceLeft < idle) idle = sinceLeft;
            }
            return idle;
        }
    }

    public void Begin() => Interlocked.Increment(ref _inProgress);

    public void End()
    {
        Volatile.Write(ref _lastCall, _time.GetTimestamp());
        Interlocked.Decrement(ref _inProgress);
    }

    /// <summary>Counts <paramref name="decision"/> (for <paramref name="permits"/> permits) and returns its lease.</summary>
    public RateLimitLease Record(RateLimitDecision decision, int permits)
    {
        if (decision.Allowed) Interlocked.Increment(ref _successful);
        else Interlocked.Increment(ref _failed);
        // A fallback decision says nothing about the window in Redis.
        if (!decision.IsFallback)
        {
            var now = _time.GetTimestamp();
            Interlocked.Exchange(ref _remaining, decision.Remaining);
            Volatile.Write(ref _lastDecision, now);
            if (decision.Allowed && permits > 0) Volatile.Write(ref _lastAdmission, now);
        }
        return new RedisRateLimitLease(decision);
    }

    public RateLimiterStatistics Snapshot()
    {
        var last = Volatile.Read(ref _lastDecision);
        // A window after the last decision, every entry it counted has left the window.
        var available = last == 0 || _time.GetElapsedTime(last) >= _window ? _limit : Interlocked.Read(ref _remaining);
        return Statistics(available, Interlocked.Read(ref _successful), Interlocked.Read(ref _failed));
    }

    public static RateLimiterStatistics Statistics(long available, long successful, long failed) => new()
    {
        CurrentAvailablePermits = available,
        CurrentQueuedCount = 0,
        TotalSuccessfulLeases = successful,
        TotalFailedLeases = failed,
    };
}
