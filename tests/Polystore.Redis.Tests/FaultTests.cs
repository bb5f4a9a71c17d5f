using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed class FaultTests
{
    private static Task UntilAsync(Func<Task<bool>> condition, string what, CancellationToken ct) =>
        Poll.UntilAsync(condition, what, ct, TimeSpan.FromSeconds(30));

    [Fact]
    public async Task Redis_stopped_mid_run_falls_back_as_configured_then_recovers_without_a_restart()
    {
        var ct = TestContext.Current.CancellationToken;
        using var server = new ThrowawayRedis("fault-" + Guid.NewGuid().ToString("N")[..12], timeoutSeconds: 1);
        await server.StartAsync(ct);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(server.Settings));
        var open = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions { PermitLimit = 1000, Window = TimeSpan.FromSeconds(10), OnRedisFailure = RedisFailureMode.FailOpen });
        var closed = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions { PermitLimit = 1000, Window = TimeSpan.FromSeconds(10), OnRedisFailure = RedisFailureMode.FailClosed });
        var locks = new RedisLockProvider(redis, new RedisLockOptions { Expiry = TimeSpan.FromSeconds(5) });
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var cache = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { UseL1 = true, FailSafe = true, L1Ttl = TimeSpan.FromMilliseconds(1), TimeProvider = time }, ct);

        // Up: real decisions, a real lock, a cached value.
        Assert.False((await open.TryAcquireAsync("k", 1, ct)).IsFallback);
        await using (var held = await locks.AcquireAsync("r", TimeSpan.Zero, ct)) Assert.Equal(1, held.FencingToken);
        Assert.Equal("v1", await cache.GetOrSetAsync("c", _ => Task.FromResult<string?>("v1"), cancellationToken: ct));

        // A steady stream of limiter calls across the outage: none may throw.
        var outcomes = new ConcurrentQueue<(bool Fallback, bool Allowed)>();
        using var stop = new CancellationTokenSource();
        var stream = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var d = await open.TryAcquireAsync("stream", 1, ct);
                outcomes.Enqueue((d.IsFallback, d.Allowed));
                await Task.Delay(10, ct);
            }
        }, ct);

        await UntilAsync(() => Task.FromResult(outcomes.Count >= 3), "the stream to start", ct);
        await server.KillAsync();

        // Down: fail-open allows, fail-closed denies, both flagged as fallbacks.
        await UntilAsync(async () => (await open.TryAcquireAsync("k", 1, ct)).IsFallback, "a fallback decision", ct);
        var o = await open.TryAcquireAsync("k", 1, ct);
        var c = await closed.TryAcquireAsync("k", 1, ct);
        Assert.Equal((true, true), (o.IsFallback, o.Allowed));
        Assert.Equal((true, false), (c.IsFallback, c.Allowed));
        // The lock cannot be taken and says so (never a false "acquired").
        await Assert.ThrowsAnyAsync<RedisException>(async () => await locks.TryAcquireAsync("r", TimeSpan.Zero, ct));
        // The cache keeps answering: the factory still serves, and when it fails too, fail-safe serves the last value
        // (the L1 copy, past its L1 lifetime, so the call does try Redis and the factory first).
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal("v2", await cache.GetOrSetAsync("c2", _ => Task.FromResult<string?>("v2"), cancellationToken: ct));
        Assert.Equal("v1", await cache.GetOrSetAsync<string>("c", _ => throw new InvalidOperationException("source down too"), cancellationToken: ct));

        // The stream sees the outage before Redis comes back: a call it made just before the kill can wait for the
        // reconnection (up to the operation timeout), and a restart within that wait would let it ride the outage out.
        await UntilAsync(() => Task.FromResult(outcomes.Any(x => x.Fallback)), "the stream to meet the outage", ct);

        // Back up on the same port, same process: everything recovers by itself.
        await server.StartAsync(ct);
        await UntilAsync(async () => !(await closed.TryAcquireAsync("k", 1, ct)).IsFallback, "the limiter to reach Redis again", ct);
        var after = await closed.TryAcquireAsync("k", 1, ct);
        Assert.Equal((false, true), (after.IsFallback, after.Allowed));
        await using (var again = await locks.AcquireAsync("r", TimeSpan.FromSeconds(5), ct))
            Assert.True(again.FencingToken >= 1); // without persistence the restarted server starts the fence again: see README
        Assert.Equal("v3", await cache.GetOrSetAsync("c3", _ => Task.FromResult<string?>("v3"), cancellationToken: ct));
        Assert.Equal((true, "v3"), await cache.TryGetAsync<string>("c3", ct));

        bool StreamRecovered()
        {
            var sofar = outcomes.ToArray();
            var fallback = Array.FindIndex(sofar, x => x.Fallback);
            return fallback >= 0 && sofar[fallback..].Any(x => !x.Fallback && x.Allowed);
        }
        // A stream that stopped on an exception would never recover: surface it instead of waiting out the bound.
        await Poll.UntilAsync(async () => { if (stream.IsFaulted) await stream; return StreamRecovered(); },
            "the stream of limiter calls to reach Redis again", ct, TimeSpan.FromSeconds(60), async () =>
            {
                var sofar = outcomes.ToArray();
                var now = await open.TryAcquireAsync("stream", 1, ct);
                return $"{sofar.Length} decisions, stream task {stream.Status}, the last ones {string.Join(" ", sofar.TakeLast(8))}; " +
                    $"a decision asked now: {now}; {string.Join("; ", RedisCircuitBreaker.Of(redis).Select(b => b.Describe()))}";
            });
        await stop.CancelAsync();
        await stream;
        var seen = outcomes.ToArray();
        var firstFallback = Array.FindIndex(seen, x => x.Fallback);
        Assert.True(firstFallback >= 0, "the stream saw the outage");
        Assert.Contains(seen[..firstFallback], x => !x.Fallback);
        Assert.Contains(seen[firstFallback..], x => !x.Fallback && x.Allowed);
        Assert.All(seen.Where(x => x.Fallback), x => Assert.True(x.Allowed));
    }

    [Fact]
    public async Task Redis_stopped_under_load_answers_by_the_failure_modes_then_recovers_through_Redis()
    {
        var ct = TestContext.Current.CancellationToken;
        // The production socket timeout (5 s): without the breaker each call below would wait for it.
        using var server = new ThrowawayRedis("load-" + Guid.NewGuid().ToString("N")[..12], timeoutSeconds: 5);
        await server.StartAsync(ct);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(server.Settings));
        var logs = new CapturedLogs();
        var prefix = TestServers.UniqueName("load");
        RedisSlidingWindowRateLimiter Limiter(string name, RedisFailureMode mode) =>
            new(redis, new RedisSlidingWindowOptions { PermitLimit = 1_000_000, Window = TimeSpan.FromSeconds(10), KeyPrefix = $"{prefix}:{name}", OnRedisFailure = mode }, logs);
        var failOpen = Limiter("open", RedisFailureMode.FailOpen);
        var failClosed = Limiter("closed", RedisFailureMode.FailClosed);
        var throwing = Limiter("throw", RedisFailureMode.Throw);
        var locks = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = prefix + ":lock" }, logs);
        // L2 only: every read asks Redis (or skips it); and an L1 instance with fail-safe on the same entries.
        await using var cache = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":c" }, logs, ct);
        await using var tiered = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":c", UseL1 = true, FailSafe = true }, logs, ct);
        var breaker = locks.Breaker;
        Assert.Equal(RedisCircuitBreaker.Closed, breaker.State);
        Assert.False((await failClosed.TryAcquireAsync("warm", 1, ct)).IsFallback);
        Assert.Equal("w", await tiered.GetOrSetAsync("warm", _ => Task.FromResult<string?>("w"), cancellationToken: ct));

        await server.KillAsync();

        var errors = new ConcurrentQueue<string>();
        var thrown = 0;
        var refusedLocks = 0;
        async Task WorkerAsync(int w)
        {
            for (var i = 0; i < 60; i++)
            {
                var key = $"k{w}-{i}";
                try
                {
                    var value = await cache.GetOrSetAsync(key, _ => Task.FromResult<string?>("v:" + key), cancellationToken: ct);
                    if (value != "v:" + key) errors.Enqueue($"cache {key} = {value}");
                    if (await tiered.GetOrSetAsync<string>("warm", _ => throw new InvalidOperationException("the L1 copy must serve"), cancellationToken: ct) != "w")
                        errors.Enqueue("the L1 copy was not served");
                    var open = await failOpen.TryAcquireAsync(key, 1, ct);
                    if (!open.Allowed) errors.Enqueue($"FailOpen denied {key} (fallback {open.IsFallback})");
                    var closed = await failClosed.TryAcquireAsync(key, 1, ct);
                    if (!closed.IsFallback || closed.Allowed) errors.Enqueue($"FailClosed answered {closed} while Redis was down");
                    try
                    {
                        var d = await throwing.TryAcquireAsync(key, 1, ct);
                        errors.Enqueue($"Throw answered {d} while Redis was down");
                    }
                    catch (Exception e) when (e is RedisException or TimeoutException)
                    {
                        Interlocked.Increment(ref thrown);
                    }
                    try
                    {
                        await using var held = await locks.TryAcquireAsync(key, TimeSpan.Zero, ct);
                        errors.Enqueue($"lock {key} granted while Redis was down");
                    }
                    catch (Exception e) when (e is RedisException or TimeoutException)
                    {
                        Interlocked.Increment(ref refusedLocks);
                    }
                    var pings = await RedisPing.PingAsync(redis, ct);
                    if (pings[0].Reachable) errors.Enqueue("the ping reached a stopped server");
                }
                catch (Exception e)
                {
                    errors.Enqueue($"{key}: {e.GetType().Name}: {e.Message}");
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, 16).Select(w => Task.Run(() => WorkerAsync(w), ct)));

        Assert.Empty(errors);
        Assert.Equal(16 * 60, thrown);
        Assert.Equal(16 * 60, refusedLocks);
        Assert.Equal(16 * 60, cache.FactoryCalls);
        Assert.True(breaker.IsOpen);
        var down = Assert.Single(await RedisPing.PingAsync(redis, ct));
        Assert.Contains("circuit breaker", down.Error, StringComparison.Ordinal);
        // A cache built during the outage (as dependency injection builds it) subscribes on first use.
        await using var late = new RedisTieredCache(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":c", UseL1 = true }, logs);
        Assert.Equal("during", await late.GetOrSetAsync("during", _ => Task.FromResult<string?>("during"), cancellationToken: ct));

        await server.StartAsync(ct);
        await UntilAsync(() => Task.FromResult(breaker.State == RedisCircuitBreaker.Closed), "the breaker to close after the restart", ct);

        // Through Redis again: a value written now is in Redis, and another instance reads it without its factory.
        Assert.Equal("after", await cache.GetOrSetAsync("after", _ => Task.FromResult<string?>("after"), cancellationToken: ct));
        await using (var admin = await server.ConnectAsync())
            Assert.True(await admin.GetDatabase().KeyExistsAsync(cache.RedisKeyOf("after")));
        Assert.Equal("after", await tiered.GetOrSetAsync<string>("after", _ => throw new InvalidOperationException("must come from Redis"), cancellationToken: ct));
        var decided = await failClosed.TryAcquireAsync("after", 1, ct);
        Assert.Equal((false, true), (decided.IsFallback, decided.Allowed));
        Assert.False((await throwing.TryAcquireAsync("after", 1, ct)).IsFallback);
        await using (var held = await locks.AcquireAsync("after", TimeSpan.FromSeconds(5), ct)) Assert.True(held.FencingToken >= 1);
        Assert.True(Assert.Single(await RedisPing.PingAsync(redis, ct)).Reachable);
        // The cache built during the outage subscribes once Redis is back: another instance's change reaches its L1.
        Assert.Equal("one", await late.GetOrSetAsync("shared", _ => Task.FromResult<string?>("one"), cancellationToken: ct));
        await tiered.SetAsync("shared", "two", cancellationToken: ct);
        await UntilAsync(async () => await late.GetOrSetAsync<string>("shared", _ => Task.FromResult<string?>("refetched"), cancellationToken: ct) == "two",
            "the late cache's L1 copy to be invalidated", ct);

        // One warning when it opened and one when it closed, for thousands of calls that skipped Redis.
        Assert.Equal(1, logs.Count("RedisCircuitOpened"));
        Assert.Equal(1, logs.Count("RedisCircuitClosed"));
    }
}
