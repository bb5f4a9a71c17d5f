using System.Diagnostics;
using StackExchange.Redis;

namespace Polystore.Redis.Locking;

/// <summary>
/// A held lock. Dispose (or <c>await using</c>) releases it. <see cref="LostToken"/> is cancelled when the
/// lease can no longer be trusted (expired, extension refused, hold-time cap reached); pass
/// <see cref="FencingToken"/> to downstream writes so they can reject a stale holder.
/// </summary>
public sealed class RedisLock : IAsyncDisposable
{
    private readonly RedisLockProvider _provider;
    private readonly IDatabaseAsync _db;
    private readonly RedisKey[] _key;
    private readonly RedisValue _token;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly long _acquiredAt;
    private readonly Task? _extender;
    private int _released;

    internal RedisLock(RedisLockProvider provider, IDatabaseAsync db, RedisKey key, string resource, string token, long fence, long attemptStart)
    {
        _provider = provider;
        _db = db;
        _key = [key];
        _token = token;
        Resource = resource;
        FencingToken = fence;
        _acquiredAt = attemptStart;
        // Validity is counted from before the request was sent, so it can only err on the safe side.
        ScheduleLoss(attemptStart);
        if (provider.Options.AutoExtend) _extender = ExtendLoopAsync();
    }

    /// <summary>The locked resource name.</summary>
    public string Resource { get; }

    /// <summary>Strictly increasing per resource across all holders; never reused.</summary>
    public long FencingToken { get; }

    /// <summary>Cancelled when this holder must assume it no longer holds the lock.</summary>
    public CancellationToken LostToken => _lost.Token;

    /// <summary>Whether the lease is still believed valid (not lost and not released).</summary>
    public bool IsHeld => !_lost.IsCancellationRequested && Volatile.Read(ref _released) == 0;

    /// <summary>Resets the lease to the configured expiry if this holder still owns it; false when it was lost.</summary>
    public async ValueTask<bool> ExtendAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _released) != 0) return false;
        cancellationToken.ThrowIfCancellationRequested();
        var start = Stopwatch.GetTimestamp();
        var ok = (long)await LockScripts.Extend.EvaluateAsync(_db, _key, [_token, _provider.ExpiryMs]).ConfigureAwait(false) == 1;
        if (ok) ScheduleLoss(start);
        else MarkLost("extend-refused");
        return ok;
    }

    /// <summary>Releases the lock if this holder still owns it; false when it had already expired or moved on.</summary>
    public async ValueTask<bool> ReleaseAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return false;
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_extender is not null) await _extender.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return (long)await LockScripts.Release.EvaluateAsync(_db, _key, [_token]).ConfigureAwait(false) == 1;
    }

    /// <summary>Releases the lock (errors are swallowed: the lease expires on its own).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await ReleaseAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The lease runs out by itself; a release failure must not mask the caller's own exception.
        }
        finally
        {
            _lost.Dispose();
            _stop.Dispose();
        }
    }

    private void ScheduleLoss(long from)
    {
        var left = _provider.Options.Expiry - Stopwatch.GetElapsedTime(from);
        try
        {
            if (left <= TimeSpan.Zero) MarkLost("expired");
            else _lost.CancelAfter(left);
        }
        catch (ObjectDisposedException)
        {
            // released and disposed concurrently
        }
    }

    private void MarkLost(string reason)
    {
        if (Volatile.Read(ref _released) != 0 || _lost.IsCancellationRequested) return;
        RedisMetrics.LockLostCounter.Add(1, new KeyValuePair<string, object?>("reason", reason));
        try
        {
            _lost.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task ExtendLoopAsync()
    {
        var options = _provider.Options;
        using var timer = new PeriodicTimer(options.Interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                if (options.MaxHoldTime is { } cap && Stopwatch.GetElapsedTime(_acquiredAt) + options.Expiry > cap)
                    return; // cap reached: stop extending; the scheduled loss fires when the current lease ends
                try
                {
                    if (!await ExtendAsync().ConfigureAwait(false)) return;
                }
                catch (Exception e) when (RedisLuaScript.IsUnavailable(e))
                {
                    // Keep trying until the lease runs out; the scheduled loss fires if Redis stays away.
                }
            }
        }
        catch (OperationCanceledException)
        {
            // released
        }
    }
}
