using System.Diagnostics;

namespace Polystore.Redis.Locking;

/// <summary>
/// The spans and instruments of <see cref="RedisLockProvider"/> and <see cref="RedisLock"/>: <c>lock_acquire</c> (the wait),
/// <c>lock_hold</c> (from acquisition to release, beside the caller's work rather than around it) and <c>lock_release</c>.
/// </summary>
internal static class LockTelemetry
{
    public static bool Observed => RedisTelemetry.Source.HasListeners() || RedisMetrics.LockAcquireSeconds.Enabled;

    public static Activity? StartAcquire(string prefix, string resource, TimeSpan waitTimeout)
    {
        var activity = RedisTelemetry.Start("lock_acquire", prefix);
        if (activity is not { IsAllDataRequested: true }) return activity;
        activity.SetTag("polystore.lock.resource", resource);
        if (waitTimeout != Timeout.InfiniteTimeSpan) activity.SetTag("polystore.lock.wait_timeout", waitTimeout.TotalSeconds);
        return activity;
    }

    /// <summary>Ends the acquire span and times it; on success starts the hold span, a sibling of the acquire span.</summary>
    public static Activity? Acquired(Activity? activity, string prefix, string resource, RedisLock? acquired, TimeSpan waited)
    {
        Record(prefix, acquired is null ? "timeout" : "acquired", waited);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("polystore.lock.acquired", acquired is not null);
            activity.SetTag("polystore.lock.wait", waited.TotalSeconds);
            if (acquired is not null) activity.SetTag("polystore.lock.fencing_token", acquired.FencingToken);
        }
        if (acquired is null || !RedisTelemetry.Source.HasListeners()) return null;
        var parent = activity?.Parent;
        activity?.Stop();
        // Not the caller's current activity: the hold runs beside the caller's work and ends when the lock is released.
        var current = Activity.Current;
        var hold = RedisTelemetry.Start("lock_hold", prefix, parent?.Context ?? default);
        Activity.Current = current;
        if (hold is { IsAllDataRequested: true })
        {
            hold.SetTag("polystore.lock.resource", resource);
            hold.SetTag("polystore.lock.fencing_token", acquired.FencingToken);
        }
        return hold;
    }

    public static void Failed(Activity? activity, string prefix, Exception exception, TimeSpan waited)
    {
        Record(prefix, "failed", waited);
        RedisTelemetry.Fail(activity, exception);
    }

    public static void Cancelled(Activity? activity, string prefix, TimeSpan waited)
    {
        Record(prefix, "cancelled", waited);
        if (activity is not { IsAllDataRequested: true }) return;
        activity.SetTag("polystore.lock.acquired", false);
        activity.SetTag("polystore.lock.cancelled", true);
        activity.SetTag("polystore.lock.wait", waited.TotalSeconds);
    }

    public static void Contended(string prefix)
    {
        if (RedisMetrics.LockContentionCounter.Enabled) RedisMetrics.LockContentionCounter.Add(1, new KeyValuePair<string, object?>("prefix", prefix));
    }

    /// <summary>Ends the hold span (from any context: the caller's current activity is left as it was).</summary>
    public static void EndHold(Activity? hold, string how)
    {
        if (hold is null) return;
        hold.SetTag("polystore.lock.released_by", how);
        var current = Activity.Current;
        hold.Stop();
        Activity.Current = current;
    }

    private static void Record(string prefix, string outcome, TimeSpan waited)
    {
        if (RedisMetrics.LockAcquireSeconds.Enabled)
            RedisMetrics.LockAcquireSeconds.Record(waited.TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome), new KeyValuePair<string, object?>("prefix", prefix));
    }
}
