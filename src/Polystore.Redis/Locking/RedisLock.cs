using System.Diagnostics;
using StackExchange.Redis;

namespace Polystore.Redis.Locking;

/// <summary>
/// A held lock. Dispose (or <c>await using</c>) releases it. <see cref="LostToken"/> is cancelled when the
/// lease can no longer be trusted (expired, extension refused, hold-time cap reached); pass
/// <see cref="FencingToken"/> to downstream writes so they can reject a stale holder.
/// </summary>
public sealed class RedisLock : IRedisLock
{
    private readonly RedisLockProvider _provider;
    private readonly IDatabaseAsync _db;
    private readonly RedisKey[] _keys; // lock, fence
    private readonly RedisValue _token;
    private readonly long _acquiredAt;
    private readonly LockExtensionScheduler? _extender; // the provider's, with AutoExtend
    private CancellationTokenSource? _lost; // created on first use of LostToken: most holders never ask
    private Timer? _expiry; // fires MarkLost("expired") when the lease runs out; armed with _lost
    private long _deadline; // Stopwatch timestamp after which the lease must be assumed gone
    private int _lostFlag;
    private int _released;

    internal RedisLock(RedisLockProvider provider, IDatabaseAsync db, RedisKey[] keys, string resource, RedisValue token, long fence, long attemptStart)
    {
        _provider = provider;
        _db = db;
        _keys = keys;
        _token = token;
        Resource = resource;
        FencingToken = fence;
        _acquiredAt = attemptStart;
        // Validity is counted from before the request was sent, so it can only err on the safe side.
        ScheduleLoss(attemptStart);
        if (provider.Options.AutoExtend)
        {
            _extender = provider.Extender;
            _extender.Schedule(this);
        }
    }

    // The extension scheduler's bookkeeping (see LockExtensionScheduler), guarded by its lock: a place in its
    // list ordered by due time, and whether this lock is in it or must never be put back.
    internal RedisLock? ExtensionPrev;
    internal RedisLock? ExtensionNext;
    internal long ExtensionDue;
    internal bool ExtensionScheduled;
    internal bool ExtensionStopped;
    private int _autoExtensions;

    /// <summary>Extensions the scheduler made (for tests).</summary>
    internal int AutoExtensions => Volatile.Read(ref _autoExtensions);

    /// <summary>The lock_hold span, while someone listens; it ends when the lock is released.</summary>
    internal Activity? Hold { get; set; }

    /// <summary>The locked resource name.</summary>
    public string Resource { get; }

    /// <summary>Strictly increasing per resource across all holders; never reused.</summary>
    public long FencingToken { get; }

    /// <summary>Cancelled when this holder must assume it no longer holds the lock (lease ran out, extension refused, cap reached).</summary>
    public CancellationToken LostToken
    {
        get
        {
            var cts = LazyInitializer.EnsureInitialized(ref _lost, () => new CancellationTokenSource());
            Arm(cts);
            return cts.Token;
        }
    }

    /// <summary>Whether the lease is still believed valid (not lost, not run out, not released).</summary>
    public bool IsHeld => Volatile.Read(ref _lostFlag) == 0 && Volatile.Read(ref _released) == 0
        && Stopwatch.GetTimestamp() < Interlocked.Read(ref _deadline) && Volatile.Read(ref _lost)?.IsCancellationRequested != true;

    /// <summary>
    /// Resets the lease to the configured expiry if this holder still owns it; false when it was lost. Lost is final: once
    /// the handle has judged the lease gone (its time ran out, an extension was refused, <see cref="LostToken"/> fired),
    /// <see cref="IsHeld"/> stays false and this returns false without asking Redis, even if the key is still there.
    /// Redis unavailable (or the circuit breaker open) throws, and the lease keeps running out from its last extension.
    /// </summary>
    public async ValueTask<bool> ExtendAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _released) != 0 || Volatile.Read(ref _lostFlag) != 0) return false;
        // Past its deadline the lease is gone whether or not a LostToken timer was armed to say so.
        if (Stopwatch.GetTimestamp() >= Interlocked.Read(ref _deadline))
        {
            MarkLost("expired");
            return false;
        }
        cancellationToken.ThrowIfCancellationRequested();
        var breaker = _provider.Breaker;
        if (breaker.IsOpen) throw breaker.ShortCircuit("lock", $"the lease on '{Resource}' was not extended");
        var start = Stopwatch.GetTimestamp();
        var ok = (long)await breaker.RunAsync(LockScripts.Extend.EvaluateAsync(_db, [_keys[0]], [_token, _provider.ExpiryMs]), cancellationToken).ConfigureAwait(false) == 1;
        if (!ok)
        {
            MarkLost("extend-refused");
            return false;
        }
        ScheduleLoss(start);
        // A loss judged while the extension was on its way stands: the holder may already have acted on it.
        return Volatile.Read(ref _lostFlag) == 0;
    }

    /// <summary>Releases the lock if this holder still owns it; false when it had already expired or moved on.</summary>
    public async ValueTask<bool> ReleaseAsync(CancellationToken cancellationToken = default)
    {
        // Before the handle counts as released: a release cancelled here leaves the lock held, and DisposeAsync releases it.
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.Exchange(ref _released, 1) != 0) return false;
        Interlocked.Exchange(ref _expiry, null)?.Dispose();
        // No extension is scheduled after this; one already sent reaches Redis before the release (same
        // connection, sent first), and one not yet sent is refused there (compare-and-PEXPIRE).
        _extender?.Remove(this);
        LockTelemetry.EndHold(Hold, "release");
        using var activity = RedisTelemetry.Start("lock_release", _provider.Options.KeyPrefix);
        try
        {
            var released = await _provider.ReleaseAsync(_keys, _token).ConfigureAwait(false);
            if (activity is { IsAllDataRequested: true })
            {
                activity.SetTag("polystore.lock.resource", Resource);
                activity.SetTag("polystore.lock.fencing_token", FencingToken);
                activity.SetTag("polystore.lock.released", released);
            }
            return released;
        }
        catch (Exception e)
        {
            RedisTelemetry.Fail(activity, e);
            throw;
        }
    }

    /// <summary>
    /// Releases the lock without waiting for Redis to confirm (use <see cref="ReleaseAsync"/> for a confirmed release).
    /// The compare-and-delete is queued with the provider's other acquires and releases, which reach Redis in
    /// queue order (so a re-acquire from this process always finds it released); it can never delete another
    /// holder's lock, and if it is lost with the connection the lease simply runs out. Not waiting for the
    /// reply halves the round trips of an acquire/release pair.
    /// </summary>
    public ValueTask DisposeAsync()
    {
        try
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return default;
            _extender?.Remove(this);
            LockTelemetry.EndHold(Hold, "dispose");
            _provider.ReleaseInBackground(_keys, _token);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The lease runs out by itself; a release failure must not mask the caller's own exception.
        }
        finally
        {
            Interlocked.Exchange(ref _expiry, null)?.Dispose();
            Interlocked.Exchange(ref _lost, null)?.Dispose();
        }
        return default;
    }

    private void ScheduleLoss(long from)
    {
        Interlocked.Exchange(ref _deadline, from + (long)(_provider.Options.Expiry.TotalSeconds * Stopwatch.Frequency));
        if (Volatile.Read(ref _lost) is { } cts) Arm(cts);
    }

    private void Arm(CancellationTokenSource cts)
    {
        try
        {
            if (Volatile.Read(ref _lostFlag) != 0) cts.Cancel();
            else
            {
                var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), Interlocked.Read(ref _deadline));
                if (left <= TimeSpan.Zero) MarkLost("expired");
                else
                {
                    // A timer of its own rather than CancelAfter: the loss is counted and marked on the hold span before
                    // the token fires, so the holder's callbacks (which may release at once) never get ahead of it.
                    var timer = Volatile.Read(ref _expiry);
                    if (timer is null)
                    {
                        var created = new Timer(static holder => ((RedisLock)holder!).MarkLost("expired"), this, Timeout.Infinite, Timeout.Infinite);
                        timer = Interlocked.CompareExchange(ref _expiry, created, null) ?? created;
                        if (!ReferenceEquals(timer, created)) created.Dispose();
                    }
                    timer.Change(left, Timeout.InfiniteTimeSpan);
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // disposed concurrently
        }
    }

    private void MarkLost(string reason)
    {
        if (Volatile.Read(ref _released) != 0 || Interlocked.Exchange(ref _lostFlag, 1) != 0) return;
        RedisMetrics.LockLostCounter.Add(1, new KeyValuePair<string, object?>("reason", reason));
        Hold?.AddEvent(new ActivityEvent("lock_lost", tags: new ActivityTagsCollection { ["polystore.lock.lost_reason"] = reason }));
        try
        {
            Volatile.Read(ref _lost)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>One scheduled extension (the scheduler calls it when due); schedules the next one unless it must stop.</summary>
    internal async Task ExtendScheduledAsync()
    {
        var options = _provider.Options;
        if (options.MaxHoldTime is { } cap && Stopwatch.GetElapsedTime(_acquiredAt) + options.Expiry > cap)
            return; // cap reached: stop extending; the loss fires when the current lease ends
        try
        {
            if (!await ExtendAsync().ConfigureAwait(false)) return; // refused or released
            Interlocked.Increment(ref _autoExtensions);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e))
        {
            // Keep trying until the lease runs out; LostToken fires if Redis stays away.
        }
        catch (Exception)
        {
            return; // not a passing outage: stop extending, and the lease runs out
        }
        _extender!.Schedule(this);
    }
}
