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
    private readonly string _tagStart;
    // Concurrent callers are coalesced: while a batch is on the wire, new calls queue up and go together
    // in the next script call (per hash slot in a cluster). Each decision is still exact and atomic;
    // batching only removes per-call overhead.
    private readonly SlotCoalescer<Pending> _coalescer;

    /// <summary>Creates a limiter over <paramref name="redis"/>.</summary>
    public RedisSlidingWindowRateLimiter(IConnectionMultiplexer redis, RedisSlidingWindowOptions options)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        _redis = redis;
        Options = options.Validated();
        _window = (long)(Options.Window.Ticks / TimeSpan.TicksPerMicrosecond);
        _limit = Options.PermitLimit;
        _tagStart = RedisKeys.TagStart(Options.KeyPrefix);
        _coalescer = new SlotCoalescer<Pending>(redis, SendAsync, p => p.Slot);
    }

    /// <summary>The validated options.</summary>
    public RedisSlidingWindowOptions Options { get; }

    /// <summary>
    /// The decision script, for tools that call it directly (such as <c>redis-benchmark</c> with EVALSHA of
    /// <see cref="RedisScript.Sha1Hex"/>). KEYS: one <c>{prefix:key}:log</c> per decision; ARGV: the window in
    /// µs, the permit limit, then the permits requested per key.
    /// </summary>
    public static RedisScript Script => SlidingWindowScript.Script;

    /// <summary>
    /// Tries to take <paramref name="permits"/> permits for <paramref name="key"/> (0 only asks whether one is free).
    /// A token cancelled before the call throws <see cref="OperationCanceledException"/> and sends nothing; cancelling
    /// later stops the wait only: the decision was already queued for Redis and is still taken (its permits recorded).
    /// </summary>
    public ValueTask<RateLimitDecision> TryAcquireAsync(string key, int permits = 1, CancellationToken cancellationToken = default)
    {
        Validate(key, permits);
        cancellationToken.ThrowIfCancellationRequested();
        RedisKey log = RedisKeys.Key(_tagStart, key, LogSuffix);
        // The slot only matters when batches must be split per slot (cluster, or not known yet).
        var pending = new Pending(log, permits, _coalescer.KnownStandalone ? 0 : _redis.HashSlot(log));
        _coalescer.Enqueue(pending);
        return new ValueTask<RateLimitDecision>(cancellationToken.CanBeCanceled ? pending.Task.WaitAsync(cancellationToken) : pending.Task);
    }

    // Returns what resumes the batch's callers; the coalescer runs it (see SlotCoalescer) and nothing in it can throw.
    private async Task<Action> SendAsync(List<Pending> batch)
    {
        var keys = new RedisKey[batch.Count];
        var args = new RedisValue[batch.Count + 2];
        args[0] = _window;
        args[1] = _limit;
        for (var i = 0; i < batch.Count; i++)
        {
            keys[i] = batch[i].Log;
            args[i + 2] = batch[i].Permits;
        }
        RedisResult[] result;
        try
        {
            result = (RedisResult[])(await SlidingWindowScript.Script.EvaluateAsync(_redis.GetDatabase(), keys, args).ConfigureAwait(false))!;
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e))
        {
            return () =>
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
            };
        }
        catch (Exception e)
        {
            return () => { foreach (var p in batch) p.TrySetException(e); };
        }
        var decisions = new RateLimitDecision[batch.Count];
        try
        {
            var at = 1;
            for (var i = 0; i < decisions.Length; i++) decisions[i] = Parse(result, ref at);
        }
        catch (Exception e)
        {
            return () => { foreach (var p in batch) p.TrySetException(e); };
        }
        return () =>
        {
            for (var i = 0; i < decisions.Length; i++) batch[i].TrySetResult(decisions[i]);
        };
    }

    // Completed by SlotCoalescer, which resumes a batch's callers one after the other on the reply's thread.
    private sealed class Pending(RedisKey log, int permits, int slot) : TaskCompletionSource<RateLimitDecision>
    {
        public RedisKey Log { get; } = log;

        public int Permits { get; } = permits;

        public int Slot { get; } = slot;
    }

    /// <summary>The synchronous form of <see cref="TryAcquireAsync"/> (one blocking round trip).</summary>
    public RateLimitDecision TryAcquire(string key, int permits = 1)
    {
        var (keys, args) = Prepare(key, permits);
        try
        {
            var at = 1;
            return Parse((RedisResult[])SlidingWindowScript.Script.Evaluate(_redis.GetDatabase(), keys, args)!, ref at);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e))
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

    private const string LogSuffix = ":log";

    internal static string LogKey(string prefix, string key) => RedisKeys.Tagged(prefix, key, LogSuffix);

    private void Validate(string key, int permits)
    {
        RedisKeys.ValidateName(key, nameof(key));
        if (permits < 0 || permits > Options.PermitLimit)
            throw new ArgumentOutOfRangeException(nameof(permits), permits, $"permits must be between 0 and the permit limit {Options.PermitLimit}.");
    }

    private (RedisKey[] Keys, RedisValue[] Args) Prepare(string key, int permits)
    {
        Validate(key, permits);
        return ([RedisKeys.Key(_tagStart, key, LogSuffix)], [_window, _limit, permits]);
    }

    /// <summary>Reads the decision starting at <paramref name="at"/> (see <see cref="SlidingWindowScript"/>) and moves past it.</summary>
    private RateLimitDecision Parse(RedisResult[] r, ref int at)
    {
        var now = (long)r[0];
        var first = (long)r[at++];
        // Taken: only the remaining count comes back; the newest entry is this one, so reset is one window.
        if (first >= 0) return new RateLimitDecision(true, first, TimeSpan.Zero, Options.Window, now);
        var decision = new RateLimitDecision(
            first == -2,
            (long)r[at],
            TimeSpan.FromMicroseconds(Math.Max(0, (long)r[at + 1])),
            TimeSpan.FromMicroseconds(Math.Max(0, (long)r[at + 2])),
            now);
        at += 3;
        return decision;
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
