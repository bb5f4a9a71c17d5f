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
    public async ValueTask<RateLimitDecision> TryAcquireAsync(string key, int permits = 1, CancellationToken cancellationToken = default)
    {
        var (keys, args) = Prepare(key, permits);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            var result = await SlidingWindowScript.Script.EvaluateAsync(_redis.GetDatabase(), keys, args).WaitAsync(cancellationToken).ConfigureAwait(false);
            return Parse(result);
        }
        catch (Exception e) when (RedisLuaScript.IsUnavailable(e))
        {
            return Fallback(e);
        }
    }

    /// <summary>The synchronous form of <see cref="TryAcquireAsync"/> (one blocking round trip).</summary>
    public RateLimitDecision TryAcquire(string key, int permits = 1)
    {
        var (keys, args) = Prepare(key, permits);
        try
        {
            return Parse(SlidingWindowScript.Script.Evaluate(_redis.GetDatabase(), keys, args));
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

    private (RedisKey[] Keys, RedisValue[] Args) Prepare(string key, int permits)
    {
        RedisKeys.ValidateName(key, nameof(key));
        if (permits < 0 || permits > Options.PermitLimit)
            throw new ArgumentOutOfRangeException(nameof(permits), permits, $"permits must be between 0 and the permit limit {Options.PermitLimit}.");
        var tagged = RedisKeys.Tagged(Options.KeyPrefix, key);
        return ([tagged + ":log", tagged + ":seq"], [_window, _limit, permits]);
    }

    private static RateLimitDecision Parse(RedisResult result)
    {
        var r = (RedisResult[])result!;
        return new RateLimitDecision(
            (long)r[0] == 1,
            (long)r[1],
            TimeSpan.FromMicroseconds(Math.Max(0, (long)r[2])),
            TimeSpan.FromMicroseconds(Math.Max(0, (long)r[3])),
            (long)r[4]);
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
