using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polystore.Redis.Locking;

/// <summary>
/// Single-instance Redis locks with fencing tokens (standalone, cluster or Sentinel; not Redlock across independent
/// primaries). Acquire = SET NX PX + a random token + INCR of a per-resource fencing counter in one script; with
/// <see cref="RedisLockOptions.WaitForReplicas"/>, also acknowledged by replicas before the token is handed out.
/// </summary>
public sealed class RedisLockProvider : IRedisLockProvider
{
    private readonly IConnectionMultiplexer _redis;
    private readonly RedisValue _expiryMs;
    private readonly long _waitMs;
    private readonly string _tagStart;
    private readonly ScriptBatcher _batcher; // acquires and releases of every caller, coalesced
    private const string Component = "lock";

    /// <summary>Creates a provider over <paramref name="redis"/>.</summary>
    /// <param name="redis">The application's connection.</param>
    /// <param name="options">Lease, backoff, keys and circuit breaker; null = the defaults.</param>
    /// <param name="loggerFactory">Where the connection's circuit breaker logs its state changes; null = nowhere.</param>
    public RedisLockProvider(IConnectionMultiplexer redis, RedisLockOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        _redis = redis;
        Options = (options ?? new RedisLockOptions()).Validated();
        _expiryMs = (long)Math.Ceiling(Options.Expiry.TotalMilliseconds);
        _waitMs = (long)Math.Ceiling(Options.ReplicaWaitTimeout.TotalMilliseconds);
        _tagStart = RedisKeys.TagStart(Options.KeyPrefix);
        Breaker = RedisCircuitBreaker.For(redis, Options.CircuitBreaker, loggerFactory);
        _batcher = new ScriptBatcher(redis, LockScripts.AcquireOrRelease, [_expiryMs], resultsPerItem: 1, Breaker, Component);
    }

    /// <summary>The validated options.</summary>
    public RedisLockOptions Options { get; }

    /// <summary>
    /// Tries to take the lock on <paramref name="resource"/>, waiting up to <paramref name="waitTimeout"/>
    /// (zero = one attempt) with jittered exponential backoff. Returns null when it stays taken.
    /// </summary>
    /// <remarks>
    /// Redis unavailable: throws the Redis exception, never a lock. While the connection's circuit breaker is open (see
    /// <see cref="RedisLockOptions.CircuitBreaker"/>) that is at once, a <see cref="RedisConnectionException"/> saying so.
    /// An acquire given up at the operation timeout may still run later: its release is queued right behind it.
    /// </remarks>
    public ValueTask<RedisLock?> TryAcquireAsync(string resource, TimeSpan waitTimeout = default, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(resource, nameof(resource));
        if (waitTimeout < TimeSpan.Zero && waitTimeout != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(waitTimeout), waitTimeout, "waitTimeout must be zero, positive or infinite.");
        return LockTelemetry.Observed ? AcquireObservedAsync(resource, waitTimeout, cancellationToken) : AcquireCoreAsync(resource, waitTimeout, cancellationToken);
    }

    // The acquire inside a lock_acquire span, timed, and the lock_hold span started; only while someone listens.
    private async ValueTask<RedisLock?> AcquireObservedAsync(string resource, TimeSpan waitTimeout, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        using var activity = LockTelemetry.StartAcquire(Options.KeyPrefix, resource, waitTimeout);
        try
        {
            var acquired = await AcquireCoreAsync(resource, waitTimeout, cancellationToken).ConfigureAwait(false);
            var hold = LockTelemetry.Acquired(activity, Options.KeyPrefix, resource, acquired, Stopwatch.GetElapsedTime(started));
            if (acquired is not null) acquired.Hold = hold;
            return acquired;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The caller gave up waiting: not a failure of the lock, so no error status and no "failed" measurement.
            LockTelemetry.Cancelled(activity, Options.KeyPrefix, Stopwatch.GetElapsedTime(started));
            throw;
        }
        catch (Exception e)
        {
            LockTelemetry.Failed(activity, Options.KeyPrefix, e, Stopwatch.GetElapsedTime(started));
            throw;
        }
    }

    private async ValueTask<RedisLock?> AcquireCoreAsync(string resource, TimeSpan waitTimeout, CancellationToken cancellationToken)
    {
        RedisKey[] keys = [RedisKeys.Key(_tagStart, resource, ":lock"), RedisKeys.Key(_tagStart, resource, ":fence")];
        var token = NewToken();
        var db = _redis.GetDatabase();
        var started = Stopwatch.GetTimestamp();
        var backoff = Options.MinBackoff;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (Breaker.IsOpen) throw Breaker.ShortCircuit(Component, $"the lock on '{resource}' was not taken");
            var attemptStart = Stopwatch.GetTimestamp();
            long result;
            try
            {
                result = Options.WaitForReplicas > 0
                    ? await AcquireAcknowledgedAsync(resource, keys, token).ConfigureAwait(false)
                    : (long)(await _batcher.RunAsync(keys, [Acquire, token]).ConfigureAwait(false))[0];
            }
            catch (Exception e) when (RedisErrors.IsUnavailable(e) && RedisErrors.MayHaveRun(e))
            {
                // The acquire may yet run (sent without a reply, or given up at the operation timeout): the
                // compare-and-delete goes right behind it, so a lock nobody received never stays held.
                ReleaseInBackground(keys, token);
                throw;
            }
            if (result > 0) return new RedisLock(this, db, keys, resource, token, result, attemptStart);
            if (result == 0)
                throw new InvalidOperationException(
                    $"the fencing counter of '{resource}' is at its limit ({long.MaxValue}): no larger token exists, so the lock was not taken");
            LockTelemetry.Contended(Options.KeyPrefix);
            var waited = Stopwatch.GetElapsedTime(started);
            if (waitTimeout != Timeout.InfiniteTimeSpan && waited >= waitTimeout) return null;
            // Full jitter keeps waiters from retrying in lockstep; never sleep past the holder's remaining lease or our deadline.
            var holderLeft = TimeSpan.FromMilliseconds(Math.Max(1, -result - 1));
            var pause = TimeSpan.FromTicks((long)(Random.Shared.NextDouble() * backoff.Ticks) + 1);
            if (pause > holderLeft) pause = holderLeft;
            if (waitTimeout != Timeout.InfiniteTimeSpan && pause > waitTimeout - waited) pause = waitTimeout - waited;
            await Task.Delay(pause, cancellationToken).ConfigureAwait(false);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, Options.MaxBackoff.Ticks));
        }
    }

    // The acquire script and WAIT on the primary, pipelined (see RedisLockOptions.WaitForReplicas). A token the
    // replicas did not acknowledge may vanish in a failover and be handed out again, so it is never returned:
    // the exception sends the caller's catch above to release the lock.
    private async Task<long> AcquireAcknowledgedAsync(string resource, RedisKey[] keys, RedisValue token)
    {
        var wanted = Options.WaitForReplicas;
        var (reply, acknowledged) = await Breaker.RunAsync(ReplicaWait.EvaluateAsync(
            _redis, keys[0], LockScripts.AcquireOrRelease, keys, [_expiryMs, Acquire, token], wanted, _waitMs)).ConfigureAwait(false);
        var result = (long)((RedisResult[])reply!)[0];
        if (result > 0 && acknowledged < wanted)
            throw ReplicaWait.NotAcknowledged(
                $"the lock on '{resource}' was taken but {acknowledged} of {wanted} replicas acknowledged it within {_waitMs} ms, so its fencing token could not be made durable; the lock was released, not handed out");
        return result;
    }

    /// <summary>Like <see cref="TryAcquireAsync"/> but throws <see cref="TimeoutException"/> when the wait runs out.</summary>
    public async ValueTask<RedisLock> AcquireAsync(string resource, TimeSpan waitTimeout, CancellationToken cancellationToken = default) =>
        await TryAcquireAsync(resource, waitTimeout, cancellationToken).ConfigureAwait(false)
        ?? throw new TimeoutException($"lock '{resource}' was still held by another owner after {waitTimeout.TotalMilliseconds:0} ms");

    /// <inheritdoc />
    public async ValueTask<long> RaiseFencingTokenAsync(string resource, long atLeast, CancellationToken cancellationToken = default)
    {
        RedisKeys.ValidateName(resource, nameof(resource));
        ArgumentOutOfRangeException.ThrowIfNegative(atLeast);
        cancellationToken.ThrowIfCancellationRequested();
        var fence = RedisKeys.Key(_tagStart, resource, ":fence");
        return (long)(await Breaker.RunAsync(LockScripts.RaiseFence.EvaluateAsync(_redis.GetDatabase(), [fence], [atLeast]), cancellationToken).ConfigureAwait(false))!;
    }

    async ValueTask<IRedisLock?> IRedisLockProvider.TryAcquireAsync(string resource, TimeSpan waitTimeout, CancellationToken cancellationToken) =>
        await TryAcquireAsync(resource, waitTimeout, cancellationToken).ConfigureAwait(false);

    async ValueTask<IRedisLock> IRedisLockProvider.AcquireAsync(string resource, TimeSpan waitTimeout, CancellationToken cancellationToken) =>
        await AcquireAsync(resource, waitTimeout, cancellationToken).ConfigureAwait(false);

    internal RedisValue ExpiryMs => _expiryMs;

    /// <summary>Extends this provider's auto-extended locks from one timer; created with the first of them.</summary>
    internal LockExtensionScheduler Extender => LazyInitializer.EnsureInitialized(ref _extender, () => new LockExtensionScheduler(Options.Interval));

    private LockExtensionScheduler? _extender;

    /// <summary>The connection's circuit breaker (shared with the other components of this connection).</summary>
    internal RedisCircuitBreaker Breaker { get; }

    private static readonly RedisValue Acquire = "a";
    private static readonly RedisValue Release = "r";

    /// <summary>Compare-and-delete; true when <paramref name="token"/> still held the lock.</summary>
    internal async Task<bool> ReleaseAsync(RedisKey[] keys, RedisValue token) =>
        (long)(await _batcher.RunAsync(keys, [Release, token]).ConfigureAwait(false))[0] == 1;

    /// <summary>Compare-and-delete without waiting for the reply (queued in order before any later acquire from this process).</summary>
    internal void ReleaseInBackground(RedisKey[] keys, RedisValue token) => _batcher.Send(keys, [Release, token]);

    // 128 random bits, sent as they are: unguessable, so no other client can release or extend by accident or on purpose.
    private static RedisValue NewToken() => RandomNumberGenerator.GetBytes(16);
}
