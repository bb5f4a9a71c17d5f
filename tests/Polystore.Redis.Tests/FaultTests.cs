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
        await UntilAsync(() => Task.FromResult(StreamRecovered()), "the stream of limiter calls to reach Redis again", ct);
        await stop.CancelAsync();
        await stream;
        var seen = outcomes.ToArray();
        var firstFallback = Array.FindIndex(seen, x => x.Fallback);
        Assert.True(firstFallback >= 0, "the stream saw the outage");
        Assert.Contains(seen[..firstFallback], x => !x.Fallback);
        Assert.Contains(seen[firstFallback..], x => !x.Fallback && x.Allowed);
        Assert.All(seen.Where(x => x.Fallback), x => Assert.True(x.Allowed));
    }
}
