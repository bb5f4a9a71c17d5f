using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using StackExchange.Redis;

namespace Polystore.Redis.RateLimiting;

/// <summary>
/// An exact sliding-log rate limiter: every admitted permit is an entry in a sorted set scored with
/// Redis server time, and a decision is one atomic Lua script. Works on standalone and cluster
/// (both keys of a limiter key share a hash tag).
/// </summary>
public sealed class RedisSlidingWindowRateLimiter
{
    private readonly IConnectionMultiplexer _redis;
    private readonly RedisValue _window;
    private readonly RedisValue _limit;
    private readonly ConcurrentQueue<Pending> _queue = new();
    private int _mode; // 0 = not known yet (treated as cluster: grouping by slot is always safe), 1 = standalone, 2 = cluster
    private int _flushers;

    // Concurrent callers are coalesced: while a batch is on the wire, new calls queue up and go together
    // in the next script call (per hash slot in a cluster). Each decision is still exact and atomic;
    // batching only removes per-call overhead. At most this many batches are in flight at once.
    private const int MaxFlushers = 4;
    private const int MaxBatch = 64;

    /// <summary>Creates a limiter over <paramref name="redis"/>.</summary>
    public RedisSlidingWindowRateLimiter(IConnectionMultiplexer redis, SlidingWindowOptions options)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        _redis = redis;
        Options = options.Validated();
        _window = (long)(Options.Window.Ticks / TimeSpan.TicksPerMicrosecond);
        _limit = Options.PermitLimit;
    }

    /// <summary>The validated options.</summary>
    public SlidingWindowOptions Options { get; }

    /// <summary>Tries to take <paramref name="permits"/> permits for <paramref name="key"/> (0 only asks whether one is free).</summary>
    public ValueTask<RateLimitDecision> TryAcquireAsync(string key, int permits = 1, CancellationToken cancellationToken = default)
    {
        Validate(key, permits);
        cancellationToken.ThrowIfCancellationRequested();
        var tagged = RedisKeys.Tagged(Options.KeyPrefix, key);
        RedisKey log = tagged + ":log";
        // The slot only matters when batches must be split per slot (cluster, or not known yet).
        var pending = new Pending(log, tagged + ":seq", permits, Volatile.Read(ref _mode) == 1 ? 0 : _redis.HashSlot(log));
        _queue.Enqueue(pending);
        StartFlusherIfNeeded();
        return new ValueTask<RateLimitDecision>(cancellationToken.CanBeCanceled ? pending.Task.WaitAsync(cancellationToken) : pending.Task);
    }

    private void StartFlusherIfNeeded()
    {
        while (true)
        {
            var running = Volatile.Read(ref _flushers);
            if (running >= MaxFlushers) return; // a running flusher re-checks the queue before it stops
            if (Interlocked.CompareExchange(ref _flushers, running + 1, running) == running)
            {
                _ = FlushAsync();
                return;
            }
        }
    }

    private async Task FlushAsync()
    {
        var batch = new List<Pending>(MaxBatch);
        while (true)
        {
            while (batch.Count < MaxBatch && _queue.TryDequeue(out var p)) batch.Add(p);
            if (batch.Count == 0)
            {
                Interlocked.Decrement(ref _flushers);
                // Lost-wake-up guard: a caller may have enqueued after our last look but seen us still running.
                if (_queue.IsEmpty) return;
                var running = Volatile.Read(ref _flushers);
                if (running >= MaxFlushers || Interlocked.CompareExchange(ref _flushers, running + 1, running) != running) return;
                continue;
            }
            if (batch.Count == 1 || !IsCluster())
            {
                await SendAsync(batch).ConfigureAwait(false);
            }
            else
            {
                // Keys of one script call must share a slot.
                await Task.WhenAll(batch.GroupBy(p => p.Slot).Select(g => SendAsync(g.ToList()))).ConfigureAwait(false);
            }
            batch.Clear();
        }
    }

    private bool IsCluster()
    {
        var mode = Volatile.Read(ref _mode);
        if (mode == 0 && _redis.IsConnected)
        {
            mode = _redis.GetServers().Any(s => s.IsConnected && s.ServerType == ServerType.Cluster) ? 2 : 1;
            Volatile.Write(ref _mode, mode);
        }
        return mode != 1;
    }

    private async Task SendAsync(List<Pending> batch)
    {
        var keys = new RedisKey[batch.Count * 2];
        var args = new RedisValue[batch.Count + 2];
        args[0] = _window;
        args[1] = _limit;
        for (var i = 0; i < batch.Count; i++)
        {
            keys[2 * i] = batch[i].Log;
            keys[(2 * i) + 1] = batch[i].Seq;
            args[i + 2] = batch[i].Permits;
        }
        try
        {
            var result = (RedisResult[])(await SlidingWindowScript.Script.EvaluateAsync(_redis.GetDatabase(), keys, args).ConfigureAwait(false))!;
            for (var i = 0; i < batch.Count; i++) batch[i].TrySetResult(Parse(result, i));
        }
        catch (Exception e) when (RedisLuaScript.IsUnavailable(e))
        {
            foreach (var p in batch)
            {
                try
                {
                    p.TrySetResult(Fallback(e));
                }
                catch (Exception thrown)
                {
                    p.TrySetException(thrown);
                }
            }
        }
        catch (Exception e)
        {
            foreach (var p in batch) p.TrySetException(e);
        }
    }

    private sealed class Pending(RedisKey log, RedisKey seq, int permits, int slot)
        : TaskCompletionSource<RateLimitDecision>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public RedisKey Log { get; } = log;

        public RedisKey Seq { get; } = seq;

        public int Permits { get; } = permits;

        public int Slot { get; } = slot;
    }

    /// <summary>The synchronous form of <see cref="TryAcquireAsync"/> (one blocking round trip).</summary>
    public RateLimitDecision TryAcquire(string key, int permits = 1)
    {
        var (keys, args) = Prepare(key, permits);
        try
        {
            return Parse((RedisResult[])SlidingWindowScript.Script.Evaluate(_redis.GetDatabase(), keys, args)!, 0);
        }
        catch (Exception e) when (RedisLuaScript.IsUnavailable(e))
        {
            return Fallback(e);
        }
    }

    /// <summary>This limiter as a <see cref="RateLimiter"/> over one fixed key (for ASP.NET Core's middleware or any RateLimiter consumer).</summary>
    public RateLimiter ForKey(string key)
    {
        RedisKeys.ValidateName(key, nameof(key));
        return new RedisKeyRateLimiter(this, key);
    }

    /// <summary>This limiter as a <see cref="PartitionedRateLimiter{TResource}"/>: each resource maps to a Redis key.</summary>
    public PartitionedRateLimiter<TResource> Partitioned<TResource>(Func<TResource, string> keySelector)
    {
        ArgumentNullException.ThrowIfNull(keySelector);
        return new RedisPartitionedRateLimiter<TResource>(this, keySelector);
    }

    internal static string LogKey(string prefix, string key) => RedisKeys.Tagged(prefix, key) + ":log";

    private void Validate(string key, int permits)
    {
        RedisKeys.ValidateName(key, nameof(key));
        if (permits < 0 || permits > Options.PermitLimit)
            throw new ArgumentOutOfRangeException(nameof(permits), permits, $"permits must be between 0 and the permit limit {Options.PermitLimit}.");
    }

    private (RedisKey[] Keys, RedisValue[] Args) Prepare(string key, int permits)
    {
        Validate(key, permits);
        var tagged = RedisKeys.Tagged(Options.KeyPrefix, key);
        return ([tagged + ":log", tagged + ":seq"], [_window, _limit, permits]);
    }

    private static RateLimitDecision Parse(RedisResult[] r, int index)
    {
        var o = index * 5;
        return new RateLimitDecision(
            (long)r[o] == 1,
            (long)r[o + 1],
            TimeSpan.FromMicroseconds(Math.Max(0, (long)r[o + 2])),
            TimeSpan.FromMicroseconds(Math.Max(0, (long)r[o + 3])),
            (long)r[o + 4]);
    }

    private RateLimitDecision Fallback(Exception e)
    {
        var mode = Options.OnRedisFailure;
        RedisMetrics.RateLimitFallbackCounter.Add(1, new KeyValuePair<string, object?>("outcome", mode switch
        {
            RedisFailureMode.FailOpen => "allowed",
            RedisFailureMode.FailClosed => "denied",
            _ => "thrown",
        }));
        if (mode == RedisFailureMode.Throw) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
        var open = mode == RedisFailureMode.FailOpen;
        // Fail closed suggests retrying after a short pause rather than a whole window.
        return new RateLimitDecision(open, 0, open ? TimeSpan.Zero : TimeSpan.FromSeconds(1), TimeSpan.Zero, 0, IsFallback: true);
    }
}
