using System.Collections.Concurrent;
using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

/// <summary>
/// A <see cref="PartitionedRateLimiter{TResource}"/> mapping each resource to a Redis key; acquiring behaves as
/// <see cref="RedisKeyRateLimiter"/> does, with statistics per key.
/// </summary>
/// <remarks>
/// Keys come from requests, so their number is unbounded: a key's local state is dropped once it has been idle
/// for a window (10 s at least, as <see cref="PartitionedRateLimiter.Create{TResource, TPartitionKey}"/> drops idle
/// partitions). Sweeps run when the number of keys has doubled since the last one, so their cost is spread over
/// the calls that added keys.
/// </remarks>
internal sealed class RedisPartitionedRateLimiter<TResource> : PartitionedRateLimiter<TResource>
{
    private const int SweepFloor = 1024;

    private readonly LeaseAcquirer _acquirer;
    private readonly Func<TResource, string> _keySelector;
    private readonly ConcurrentDictionary<string, KeyActivity> _keys = new(StringComparer.Ordinal);
    private readonly TimeSpan _forgetAfter;
    private int _count; // kept by hand: ConcurrentDictionary.Count takes every lock
    private int _sweepAt = SweepFloor;
    private int _sweeping;

    public RedisPartitionedRateLimiter(RedisSlidingWindowRateLimiter limiter, Func<TResource, string> keySelector)
    {
        _acquirer = new LeaseAcquirer(limiter, typeof(RedisPartitionedRateLimiter<TResource>));
        _keySelector = keySelector;
        _forgetAfter = limiter.Options.Window > TimeSpan.FromSeconds(10) ? limiter.Options.Window : TimeSpan.FromSeconds(10);
    }

    /// <summary>Keys with local state now (for tests).</summary>
    internal int TrackedKeys => Volatile.Read(ref _count);

    public override RateLimiterStatistics? GetStatistics(TResource resource)
    {
        _acquirer.ThrowIfDisposed();
        // Asking about a key never adds state for it.
        return _keys.TryGetValue(KeyOf(resource), out var activity)
            ? activity.Snapshot()
            : KeyActivity.Statistics(_acquirer.PermitLimit, 0, 0);
    }

    protected override RateLimitLease AttemptAcquireCore(TResource resource, int permitCount)
    {
        _acquirer.ThrowIfDisposed();
        KeyOf(resource);
        return _acquirer.Attempt(permitCount);
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(TResource resource, int permitCount, CancellationToken cancellationToken)
    {
        _acquirer.ThrowIfDisposed();
        var key = KeyOf(resource);
        return _acquirer.AcquireAsync(key, ActivityOf(key), permitCount, cancellationToken);
    }

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

    private string KeyOf(TResource resource) =>
        _keySelector(resource) ?? throw new ArgumentNullException(nameof(resource), "The key selector returned null for this resource.");

    private KeyActivity ActivityOf(string key)
    {
        if (_keys.TryGetValue(key, out var activity)) return activity;
        var created = _acquirer.NewActivity();
        activity = _keys.GetOrAdd(key, created);
        if (ReferenceEquals(activity, created) && Interlocked.Increment(ref _count) > Volatile.Read(ref _sweepAt)) Sweep();
        return activity;
    }

    private void Sweep()
    {
        if (Interlocked.Exchange(ref _sweeping, 1) == 1) return;
        try
        {
            foreach (var entry in _keys)
                if (entry.Value.IdleDuration >= _forgetAfter && _keys.TryRemove(entry)) Interlocked.Decrement(ref _count);
            Volatile.Write(ref _sweepAt, Math.Max(SweepFloor, Volatile.Read(ref _count) * 2));
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
        }
    }
}
