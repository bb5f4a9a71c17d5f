namespace Polystore.Redis.Caching;

/// <summary>
/// Subscribes a <see cref="RedisTieredCache"/> to its invalidation channel on first use rather than in its
/// constructor, so dependency injection can build the cache without blocking on Redis. Until the subscription is
/// confirmed the instance may have missed other instances' invalidations, so its L1 copies are dropped at that
/// moment; a subscription that fails is tried again on the next use.
/// </summary>
internal sealed class InvalidationSubscription(CacheInvalidationChannel channel, L1Cache l1)
{
    private Task? _subscribing; // null: not started, or the last attempt failed
    private volatile bool _confirmed;

    /// <summary>Starts the subscription if it is neither confirmed nor under way; never waits and never throws.</summary>
    public void Ensure()
    {
        if (_confirmed || Volatile.Read(ref _subscribing) is not null) return;
        _ = EnsureAsync(CancellationToken.None).ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Subscribes (or joins the attempt under way) and waits for Redis to confirm; throws when it cannot.</summary>
    public Task EnsureAsync(CancellationToken cancellationToken)
    {
        if (_confirmed) return Task.CompletedTask;
        var attempt = Volatile.Read(ref _subscribing);
        if (attempt is null)
        {
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            attempt = Interlocked.CompareExchange(ref _subscribing, started.Task, null) ?? started.Task;
            if (attempt == started.Task) _ = SubscribeAsync(started);
        }
        return attempt.WaitAsync(cancellationToken);
    }

    private async Task SubscribeAsync(TaskCompletionSource done)
    {
        try
        {
            await channel.SubscribeAsync(CancellationToken.None).ConfigureAwait(false);
            _confirmed = true;
            l1.Clear();
            done.SetResult();
        }
        catch (Exception e)
        {
            Volatile.Write(ref _subscribing, null);
            done.SetException(e);
            _ = done.Task.Exception; // observed here: a caller that stopped waiting must not leave it unobserved
        }
    }
}
