using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

/// <summary>Local counters for <see cref="RateLimiterStatistics"/>; the authoritative count lives in Redis.</summary>
internal sealed class LeaseStatistics
{
    private long _successful;
    private long _failed;
    private long _available;

    public LeaseStatistics(long available) => _available = available;

    public RateLimitLease Record(RateLimitDecision decision)
    {
        if (decision.Allowed) Interlocked.Increment(ref _successful);
        else Interlocked.Increment(ref _failed);
        Interlocked.Exchange(ref _available, decision.Remaining);
        return new RedisRateLimitLease(decision);
    }

    public RateLimiterStatistics Snapshot() => new()
    {
        CurrentAvailablePermits = Interlocked.Read(ref _available),
        CurrentQueuedCount = 0,
        TotalSuccessfulLeases = Interlocked.Read(ref _successful),
        TotalFailedLeases = Interlocked.Read(ref _failed),
    };
}
