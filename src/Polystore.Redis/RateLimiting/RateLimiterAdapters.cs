using System.Diagnostics;
using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

/// <summary>A lease carrying the decision; RetryAfter is exposed through <see cref="MetadataName.RetryAfter"/>.</summary>
internal sealed class RedisRateLimitLease(RateLimitDecision decision) : RateLimitLease
{
    private static readonly string[] Names = [MetadataName.RetryAfter.Name, "REMAINING", "RESET"];

    public RateLimitDecision Decision { get; } = decision;

    public override bool IsAcquired => Decision.Allowed;

    public override IEnumerable<string> MetadataNames => Names;

    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        switch (metadataName)
        {
            case var n when n == MetadataName.RetryAfter.Name && !Decision.Allowed:
                metadata = Decision.RetryAfter;
                return true;
            case "REMAINING":
                metadata = Decision.Remaining;
                return true;
            case "RESET":
                metadata = Decision.Reset;
                return true;
            default:
                metadata = null;
                return false;
        }
    }
}

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

/// <summary>
/// One Redis key as a <see cref="RateLimiter"/>. No queueing: a denied lease carries RetryAfter,
/// which is what ASP.NET Core's middleware turns into a Retry-After header.
/// </summary>
internal sealed class RedisKeyRateLimiter(RedisSlidingWindowRateLimiter limiter, string key) : RateLimiter
{
    private readonly LeaseStatistics _stats = new(limiter.Options.PermitLimit);
    private long _lastUse = Stopwatch.GetTimestamp();

    public override TimeSpan? IdleDuration => Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastUse));

    public override RateLimiterStatistics? GetStatistics() => _stats.Snapshot();

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        Interlocked.Exchange(ref _lastUse, Stopwatch.GetTimestamp());
        return _stats.Record(limiter.TryAcquire(key, permitCount));
    }

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        Interlocked.Exchange(ref _lastUse, Stopwatch.GetTimestamp());
        return _stats.Record(await limiter.TryAcquireAsync(key, permitCount, cancellationToken).ConfigureAwait(false));
    }
}

/// <summary>A <see cref="PartitionedRateLimiter{TResource}"/> mapping each resource to a Redis key.</summary>
internal sealed class RedisPartitionedRateLimiter<TResource>(RedisSlidingWindowRateLimiter limiter, Func<TResource, string> keySelector)
    : PartitionedRateLimiter<TResource>
{
    private readonly LeaseStatistics _stats = new(limiter.Options.PermitLimit);

    public override RateLimiterStatistics? GetStatistics(TResource resource) => _stats.Snapshot();

    protected override RateLimitLease AttemptAcquireCore(TResource resource, int permitCount) =>
        _stats.Record(limiter.TryAcquire(keySelector(resource), permitCount));

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(TResource resource, int permitCount, CancellationToken cancellationToken) =>
        _stats.Record(await limiter.TryAcquireAsync(keySelector(resource), permitCount, cancellationToken).ConfigureAwait(false));
}
