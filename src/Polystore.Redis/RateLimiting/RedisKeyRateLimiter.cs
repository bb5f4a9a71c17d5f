using System.Diagnostics;
using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

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
