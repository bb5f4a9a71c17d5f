using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

/// <summary>One Redis key as a <see cref="RateLimiter"/>; the contract is described at <see cref="RedisSlidingWindowRateLimiter.ForKey"/>.</summary>
internal sealed class RedisKeyRateLimiter : RateLimiter
{
    private readonly LeaseAcquirer _acquirer;
    private readonly string _key;
    private readonly KeyActivity _activity;

    public RedisKeyRateLimiter(RedisSlidingWindowRateLimiter limiter, string key)
    {
        _acquirer = new LeaseAcquirer(limiter, typeof(RedisKeyRateLimiter));
        _key = key;
        _activity = _acquirer.NewActivity();
    }

    public override TimeSpan? IdleDuration => _activity.IdleDuration;

    public override RateLimiterStatistics? GetStatistics()
    {
        _acquirer.ThrowIfDisposed();
        return _activity.Snapshot();
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount) => _acquirer.Attempt(permitCount);

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        _acquirer.AcquireAsync(_key, _activity, permitCount, cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _acquirer.Dispose();
        base.Dispose(disposing);
    }

    protected override ValueTask DisposeAsyncCore()
    {
        _acquirer.Dispose();
        return default;
    }
}
