using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Time.Testing;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests.Contract;

/// <summary>
/// Polystore's limiter through its adapters, over real Redis, with a window of a minute (so no window slides by
/// itself during a test) and a <see cref="FakeTimeProvider"/> as the adapters' clock (idle time, and the waits of
/// 0-permit acquires). Passing the window removes the key's entries from Redis and moves that clock on by a window.
/// </summary>
/// <param name="redis">The connection.</param>
/// <param name="operationTimeout">How long a decision may wait for Redis before the failure mode answers (1 s by default).</param>
internal sealed class RedisSubject(IConnectionMultiplexer redis, TimeSpan? operationTimeout = null) : ILimiterSubject
{
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly string _prefix = TestServers.UniqueName("rlc");
    private readonly ConcurrentDictionary<RateLimiter, string> _keys = new();
    private readonly ConcurrentBag<RedisSlidingWindowRateLimiter> _cores = [];
    private int _next;

    public string Name => "polystore";

    public bool DecidesSynchronously => false;

    public FakeTimeProvider Time { get; } = new(DateTimeOffset.UtcNow);

    public IConnectionMultiplexer Redis => redis;

    public RedisSlidingWindowRateLimiter Core(int permitLimit) => Core(permitLimit, _prefix);

    private RedisSlidingWindowRateLimiter Core(int permitLimit, string prefix)
    {
        var options = new RedisSlidingWindowOptions { PermitLimit = permitLimit, Window = Window, KeyPrefix = prefix, TimeProvider = Time, CircuitBreaker = RedisServers.PatientBreaker };
        if (operationTimeout is { } timeout) options = options with { CircuitBreaker = new RedisCircuitBreakerOptions { OperationTimeout = timeout } };
        var core = new RedisSlidingWindowRateLimiter(redis, options);
        _cores.Add(core);
        return core;
    }

    // A look goes through a limiter's queue and connection behind every call already made on it.
    public async Task SettleAsync()
    {
        foreach (var core in _cores) await core.TryAcquireAsync("settle", 0, TestContext.Current.CancellationToken);
    }

    public RateLimiter CreateLimiter(int permitLimit) => ForKey(Core(permitLimit), NewKey());

    public RateLimiter ForKey(RedisSlidingWindowRateLimiter core, string key)
    {
        var limiter = core.ForKey(key);
        _keys[limiter] = key;
        return limiter;
    }

    // A key prefix of its own, so each partition key is the Redis key itself (the empty one too).
    public PartitionedRateLimiter<string> CreatePartitioned(int permitLimit) =>
        Core(permitLimit, _prefix + "-" + NewKey()).Partitioned<string>(partition => partition);

    public string NewKey() => "k" + Interlocked.Increment(ref _next);

    public string LogKey(RateLimiter limiter) => RedisSlidingWindowRateLimiter.LogKey(_prefix, _keys[limiter]);

    public string LogKey(string key) => RedisSlidingWindowRateLimiter.LogKey(_prefix, key);

    public async Task PassWindowAsync(RateLimiter limiter)
    {
        await redis.GetDatabase().KeyDeleteAsync(LogKey(limiter));
        Time.Advance(Window);
    }

    public async Task<RateLimitLease> CompleteAsync(ValueTask<RateLimitLease> call, string what)
    {
        // A waiter sleeps on the fake clock until the time Redis named; the clock moves on until it has woken and
        // asked again (it may have gone to sleep after the last move).
        var task = call.AsTask();
        await Poll.UntilAsync(async () =>
        {
            if (task.IsCompleted) return true;
            Time.Advance(Window);
            await Task.WhenAny(task, Task.Delay(10, TestContext.Current.CancellationToken));
            return task.IsCompleted;
        }, what, TestContext.Current.CancellationToken);
        return await task;
    }

    public ValueTask DisposeAsync() => default;
}
