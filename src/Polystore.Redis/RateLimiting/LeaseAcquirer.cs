using System.Threading.RateLimiting;

namespace Polystore.Redis.RateLimiting;

/// <summary>
/// The acquiring part of the <see cref="RateLimiter"/> adapters (see <see cref="RedisSlidingWindowRateLimiter.ForKey"/>):
/// argument checks, disposal, decisions recorded per key, and the wait of a 0-permit acquire.
/// </summary>
internal sealed class LeaseAcquirer(RedisSlidingWindowRateLimiter limiter, Type owner)
{
    // Past a look that found no free permit, the next look waits at least this long (a timer firing early
    // by the server's clock would otherwise ask again at once).
    private static readonly TimeSpan MinWait = TimeSpan.FromMilliseconds(1);

    private readonly CancellationTokenSource _disposed = new();
    private readonly TimeProvider _time = limiter.Options.TimeProvider;

    public int PermitLimit => limiter.Options.PermitLimit;

    public KeyActivity NewActivity() => new(limiter.Options.PermitLimit, limiter.Options.Window, _time);

    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, owner);

    /// <summary>Ends the adapter: 0-permit acquires still waiting get <see cref="UnacquiredLease.Disposed"/>.</summary>
    public void Dispose() => _disposed.Cancel();

    public RateLimitLease Attempt(int permitCount)
    {
        ThrowIfDisposed();
        CheckPermits(permitCount);
        return UnacquiredLease.Undecided;
    }

    public ValueTask<RateLimitLease> AcquireAsync(string key, KeyActivity activity, int permitCount, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        CheckPermits(permitCount);
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<RateLimitLease>(cancellationToken);
        activity.Begin();
        if (permitCount == 0) return WaitForPermitAsync(key, activity, cancellationToken);
        ValueTask<RateLimitDecision> decision;
        try
        {
            decision = limiter.TryAcquireAsync(key, permitCount, cancellationToken);
        }
        catch
        {
            activity.End();
            throw;
        }
        if (!decision.IsCompletedSuccessfully) return RecordAsync(decision, activity, permitCount);
        var lease = activity.Record(decision.Result, permitCount);
        activity.End();
        return new ValueTask<RateLimitLease>(lease);
    }

    private static async ValueTask<RateLimitLease> RecordAsync(ValueTask<RateLimitDecision> decision, KeyActivity activity, int permits)
    {
        try
        {
            return activity.Record(await decision.ConfigureAwait(false), permits);
        }
        finally
        {
            activity.End();
        }
    }

    // The in-box contract of AcquireAsync(0): complete once a permit is free. Redis says when the entry that
    // frees one leaves the window, so each waiter asks again then, not in a loop.
    private async ValueTask<RateLimitLease> WaitForPermitAsync(string key, KeyActivity activity, CancellationToken cancellationToken)
    {
        try
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
            while (true)
            {
                // A look takes no permit, so a caller giving up during one leaves nothing to give back.
                var look = await limiter.TryAcquireAsync(key, 0, cancellationToken).ConfigureAwait(false);
                if (_disposed.IsCancellationRequested) return UnacquiredLease.Disposed;
                if (look.Allowed || look.IsFallback) return activity.Record(look, 0);
                try
                {
                    await Task.Delay(look.RetryAfter > MinWait ? look.RetryAfter : MinWait, _time, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    return UnacquiredLease.Disposed;
                }
                catch (OperationCanceledException e)
                {
                    throw new TaskCanceledException(e.Message, e, cancellationToken);
                }
            }
        }
        finally
        {
            activity.End();
        }
    }

    private void CheckPermits(int permitCount)
    {
        if (permitCount < 0 || permitCount > limiter.Options.PermitLimit)
            throw new ArgumentOutOfRangeException(nameof(permitCount), permitCount, $"permitCount must be between 0 and the permit limit {limiter.Options.PermitLimit}.");
    }
}
