using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

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
