using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Threading.RateLimiting;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed class RateLimiterTests
{
    private readonly string _prefix = TestServers.UniqueName("rl");

    private RedisSlidingWindowRateLimiter Limiter(IConnectionMultiplexer redis, int limit, TimeSpan window, RedisFailureMode mode = RedisFailureMode.FailClosed) =>
        new(redis, new RedisSlidingWindowOptions { PermitLimit = limit, Window = window, KeyPrefix = _prefix, OnRedisFailure = mode });

    /// <summary>For every admitted timestamp t: admitted entries in (t - window, t] never exceed the limit.</summary>
    private static void AssertNeverOverLimit(IEnumerable<long> admittedMicros, long windowMicros, int limit)
    {
        var sorted = admittedMicros.Order().ToArray();
        var start = 0;
        for (var i = 0; i < sorted.Length; i++)
        {
            while (sorted[start] <= sorted[i] - windowMicros) start++;
            var inWindow = i - start + 1;
            Assert.True(inWindow <= limit, $"{inWindow} admissions inside one window ending at {sorted[i]} µs; limit {limit}");
        }
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Sixty_four_tasks_on_one_key_never_exceed_the_limit(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var window = TimeSpan.FromMilliseconds(300);
        const int limit = 20;
        var limiter = Limiter(RedisServers.Get(kind), limit, window);
        var admitted = new ConcurrentBag<long>();
        var denied = 0;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 40; i++)
            {
                var d = await limiter.TryAcquireAsync("hot", 1, ct);
                Assert.False(d.IsFallback);
                if (d.Allowed) admitted.Add(d.ServerTimeMicroseconds);
                else
                {
                    Interlocked.Increment(ref denied);
                    Assert.True(d.RetryAfter > TimeSpan.Zero && d.RetryAfter <= window, $"retry-after {d.RetryAfter}");
                }
            }
        }, ct)));
        Assert.Equal(64 * 40, admitted.Count + denied);
        Assert.True(denied > 0, "the test must push past the limit");
        Assert.True(admitted.Count >= limit);
        AssertNeverOverLimit(admitted, (long)window.TotalMicroseconds, limit);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Calls_in_the_same_millisecond_are_all_recorded(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Get(kind);
        var limiter = Limiter(redis, 100_000, TimeSpan.FromMinutes(1));
        var times = new ConcurrentBag<long>();
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                var d = await limiter.TryAcquireAsync("same-ms", 1, ct);
                Assert.True(d.Allowed);
                times.Add(d.ServerTimeMicroseconds);
            }
        }, ct)));
        var sharedMillisecond = times.GroupBy(t => t / 1000).Count(g => g.Count() > 1);
        Assert.True(sharedMillisecond > 0, "some admissions must share a millisecond for this test to mean anything");
        // Timestamp members (str(time.time())) collapse; ours never do: every admission is one entry.
        var count = await redis.GetDatabase().SortedSetLengthAsync(RedisSlidingWindowRateLimiter.LogKey(_prefix, "same-ms"));
        Assert.Equal(64 * 50, count);
        var last = await limiter.TryAcquireAsync("same-ms", 0, ct);
        Assert.Equal(100_000 - 64 * 50, last.Remaining);
    }

    [Fact]
    public async Task Rejected_calls_are_not_counted_and_the_window_slides()
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Standalone;
        var limiter = Limiter(redis, 3, TimeSpan.FromMilliseconds(400));
        for (var i = 0; i < 3; i++) Assert.True((await limiter.TryAcquireAsync("k", 1, ct)).Allowed);
        RateLimitDecision denied = default;
        for (var i = 0; i < 50; i++)
        {
            denied = await limiter.TryAcquireAsync("k", 1, ct);
            Assert.False(denied.Allowed);
        }
        Assert.Equal(3, await redis.GetDatabase().SortedSetLengthAsync(RedisSlidingWindowRateLimiter.LogKey(_prefix, "k")));
        Assert.Equal(0, denied.Remaining);
        Assert.InRange(denied.RetryAfter, TimeSpan.FromTicks(1), TimeSpan.FromMilliseconds(400));
        // The window slides: once the admitted entries leave it, a permit is free again (asking with 0 permits records nothing).
        await Poll.UntilAsync(async () => (await limiter.TryAcquireAsync("k", 0, ct)).Allowed, "the window to slide past the admitted entries", ct);
        var after = await limiter.TryAcquireAsync("k", 1, ct);
        Assert.True(after.Allowed);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task One_key_several_times_in_one_batch_keeps_every_permit(string kind)
    {
        // All decisions of one script call share one server time, so their members clash on purpose:
        // 3 decisions of 2 permits on one key must still leave 6 distinct entries and count down 10, 8, 6.
        var db = RedisServers.Get(kind).GetDatabase();
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "batch");
        var result = (RedisResult[])(await RedisSlidingWindowRateLimiter.Script.EvaluateAsync(db, [log, log, log], [60_000_000, 12, 2, 2, 2]))!;
        Assert.Equal([10L, 8L, 6L], result.Skip(1).Select(r => (long)r));
        Assert.Equal(6, await db.SortedSetLengthAsync(log));
        var scores = await db.SortedSetRangeByRankWithScoresAsync(log);
        Assert.Single(scores.Select(e => e.Score).Distinct());
        Assert.Equal((double)(long)result[0], scores[0].Score);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Callers_that_block_on_a_second_decision_right_after_the_first_still_get_it(string kind)
    {
        // A batch's callers are resumed inline, one after the other, and their next calls are held back
        // until the last has run. A caller that blocks there on its next call (sync over async) must not
        // wait forever: the stall timer sends what it queued. 64 such callers, 20 rounds each.
        var limiter = Limiter(RedisServers.Get(kind), limit: 1_000_000, TimeSpan.FromMinutes(1));

        async Task<int> CallerAsync(int caller)
        {
            var admitted = 0;
            for (var i = 0; i < 20; i++)
            {
                if ((await limiter.TryAcquireAsync($"block{caller % 8}").ConfigureAwait(false)).Allowed) admitted++;
                if (limiter.TryAcquireAsync($"block{(caller + 1) % 8}").AsTask().GetAwaiter().GetResult().Allowed) admitted++;
            }
            return admitted;
        }

        var all = Task.WhenAll(Enumerable.Range(0, 64).Select(c => Task.Run(() => CallerAsync(c))));
        var finished = await Task.WhenAny(all, Task.Delay(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken));
        Assert.True(finished == all, "callers blocking right after a decision never got their next one");
        Assert.All(await all, n => Assert.Equal(40, n));
    }

    [Fact]
    public async Task The_log_key_always_outlives_its_newest_entry_by_a_window()
    {
        // After every call the key has a TTL, and after every admission that TTL reaches at least one window
        // past the entry just added (so no entry still inside the window can vanish with its key).
        var ct = TestContext.Current.CancellationToken;
        var db = RedisServers.Standalone.GetDatabase();
        var window = TimeSpan.FromMilliseconds(400);
        var limiter = Limiter(RedisServers.Standalone, 3, window);
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "ttl");
        // Checked on the server's clock (PEXPIRETIME against the decision's server time), not by timing.
        async Task CheckAsync(RateLimitDecision d)
        {
            var expiresAtMs = (long)await db.ExecuteAsync("PEXPIRETIME", log);
            Assert.True(expiresAtMs > 0, $"the log key has no TTL ({expiresAtMs})");
            if (d.Allowed)
                Assert.True(expiresAtMs * 1000 >= d.ServerTimeMicroseconds + (long)window.TotalMicroseconds,
                    $"key expires at {expiresAtMs} ms, the entry of {d.ServerTimeMicroseconds} µs stays in the window until {(d.ServerTimeMicroseconds + (long)window.TotalMicroseconds) / 1000} ms");
        }
        for (var i = 0; i < 3; i++)
        {
            var d = await limiter.TryAcquireAsync("ttl", 1, ct);
            Assert.True(d.Allowed);
            await CheckAsync(d);
        }
        var denied = await limiter.TryAcquireAsync("ttl", 1, ct);
        Assert.False(denied.Allowed);
        await CheckAsync(denied);
        await CheckAsync(await limiter.TryAcquireAsync("ttl", 0, ct));
        // A steady trickle keeps the key alive for several windows without ever emptying it: old entries are
        // pruned as new ones come, and the expiry must move on with them.
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(150, ct);
            await CheckAsync(await limiter.TryAcquireAsync("ttl", 1, ct));
        }
    }

    [Fact]
    public async Task Weighted_permits_take_that_many_slots()
    {
        var ct = TestContext.Current.CancellationToken;
        var limiter = Limiter(RedisServers.Standalone, 10, TimeSpan.FromMinutes(1));
        var a = await limiter.TryAcquireAsync("w", 4, ct);
        Assert.True(a.Allowed);
        Assert.Equal(6, a.Remaining);
        var b = await limiter.TryAcquireAsync("w", 7, ct);
        Assert.False(b.Allowed);
        Assert.Equal(6, b.Remaining);
        Assert.True(b.RetryAfter > TimeSpan.FromSeconds(50));
        var c = await limiter.TryAcquireAsync("w", 6, ct);
        Assert.True(c.Allowed);
        Assert.Equal(0, c.Remaining);
        Assert.True(c.Reset > TimeSpan.FromSeconds(50));
        Assert.Equal(10, await RedisServers.Standalone.GetDatabase().SortedSetLengthAsync(RedisSlidingWindowRateLimiter.LogKey(_prefix, "w")));
        var tooMany = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await limiter.TryAcquireAsync("w", 11, ct));
        Assert.Equal("permits", tooMany.ParamName);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Weighted_permits_under_concurrency_over_many_keys(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var window = TimeSpan.FromMilliseconds(250);
        const int limit = 12;
        var limiter = Limiter(RedisServers.Get(kind), limit, window);
        var admitted = new ConcurrentDictionary<string, ConcurrentBag<long>>();
        await Task.WhenAll(Enumerable.Range(0, 64).Select(t => Task.Run(async () =>
        {
            for (var i = 0; i < 30; i++)
            {
                var key = $"key{(t + i) % 8}";
                var weight = 1 + ((t + i) % 3);
                var d = await limiter.TryAcquireAsync(key, weight, ct);
                if (d.Allowed)
                {
                    var bag = admitted.GetOrAdd(key, _ => []);
                    for (var w = 0; w < weight; w++) bag.Add(d.ServerTimeMicroseconds);
                }
            }
        }, ct)));
        Assert.Equal(8, admitted.Count);
        foreach (var bag in admitted.Values) AssertNeverOverLimit(bag, (long)window.TotalMicroseconds, limit);
    }

    [Fact]
    public async Task RateLimiter_adapter_gives_leases_with_retry_after()
    {
        var ct = TestContext.Current.CancellationToken;
        RateLimiter rl = Limiter(RedisServers.Standalone, 2, TimeSpan.FromMinutes(1)).ForKey("adapter");
        using (var l1 = await rl.AcquireAsync(1, ct)) Assert.True(l1.IsAcquired);
        using (var l2 = rl.AttemptAcquire(1)) Assert.True(l2.IsAcquired);
        using var l3 = await rl.AcquireAsync(1, ct);
        Assert.False(l3.IsAcquired);
        Assert.True(l3.TryGetMetadata(MetadataName.RetryAfter, out var retry));
        Assert.True(retry > TimeSpan.FromSeconds(50));
        var stats = rl.GetStatistics()!;
        Assert.Equal((2, 1, 0), (stats.TotalSuccessfulLeases, stats.TotalFailedLeases, stats.CurrentAvailablePermits));
    }

    [Fact]
    public async Task Partitioned_adapter_limits_each_partition_separately()
    {
        var ct = TestContext.Current.CancellationToken;
        var rl = Limiter(RedisServers.Standalone, 1, TimeSpan.FromMinutes(1)).Partitioned<(string User, string Path)>(r => $"{r.User}:{r.Path}");
        Assert.True((await rl.AcquireAsync(("ann", "/a"), 1, ct)).IsAcquired);
        Assert.False((await rl.AcquireAsync(("ann", "/a"), 1, ct)).IsAcquired);
        Assert.True((await rl.AcquireAsync(("bob", "/a"), 1, ct)).IsAcquired);
        Assert.True(rl.AttemptAcquire(("ann", "/b")).IsAcquired);
    }

    [Theory]
    [InlineData(RedisFailureMode.FailOpen, true, "allowed")]
    [InlineData(RedisFailureMode.FailClosed, false, "denied")]
    public async Task Unreachable_redis_follows_the_failure_mode_and_is_counted(RedisFailureMode mode, bool allowed, string outcome)
    {
        var ct = TestContext.Current.CancellationToken;
        using var redis = RedisServers.Unreachable();
        var limiter = Limiter(redis, 5, TimeSpan.FromSeconds(1), mode);
        var counted = 0L;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == RedisMetrics.MeterName && i.Name == RedisMetrics.RateLimitFallbacks) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "outcome" && (string?)tag.Value == outcome) Interlocked.Add(ref counted, value);
        });
        listener.Start();
        var key = _prefix + "-down";
        for (var i = 0; i < 3; i++)
        {
            var d = await limiter.TryAcquireAsync(key, 1, ct);
            Assert.True(d.IsFallback);
            Assert.Equal(allowed, d.Allowed);
        }
        Assert.True(Interlocked.Read(ref counted) >= 3);
    }

    [Fact]
    public async Task A_flushed_script_cache_falls_back_to_eval_once()
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Standalone;
        var adminOptions = RedisDriverSettings.Build(TestServers.Redis);
        adminOptions.AllowAdmin = true;
        await using var admin = await ConnectionMultiplexer.ConnectAsync(adminOptions);
        var server = admin.GetServers().Single();
        var limiter = Limiter(redis, 5, TimeSpan.FromSeconds(10));
        await server.ScriptFlushAsync();
        Assert.False(await server.ScriptExistsAsync(RedisSlidingWindowRateLimiter.Script.Sha1));
        Assert.True((await limiter.TryAcquireAsync("noscript", 1, ct)).Allowed);
        Assert.True(await server.ScriptExistsAsync(RedisSlidingWindowRateLimiter.Script.Sha1));
        Assert.Equal(3, (await limiter.TryAcquireAsync("noscript", 1, ct)).Remaining);
    }

    [Fact]
    public async Task A_cancelled_token_throws_before_anything_is_recorded()
    {
        var ct = TestContext.Current.CancellationToken;
        var limiter = Limiter(RedisServers.Standalone, 5, TimeSpan.FromMinutes(1));
        RateLimiter adapter = limiter.ForKey("cancelled");
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await limiter.TryAcquireAsync("cancelled", 1, cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await adapter.AcquireAsync(1, cancelled.Token));
        Assert.Equal(0, await RedisServers.Standalone.GetDatabase().SortedSetLengthAsync(RedisSlidingWindowRateLimiter.LogKey(_prefix, "cancelled")));
        var stats = adapter.GetStatistics()!;
        Assert.Equal((0, 0), (stats.TotalSuccessfulLeases, stats.TotalFailedLeases));
        Assert.Equal(4, (await limiter.TryAcquireAsync("cancelled", 1, ct)).Remaining);
    }

    [Fact]
    public async Task Cancelling_while_Redis_has_not_answered_stops_the_wait_and_the_decision_is_still_taken()
    {
        var ct = TestContext.Current.CancellationToken;
        // A server of its own, paused for writes (scripts included) while the calls are on the wire; the client
        // timeout is long, so no call gives up (and falls back) on its own while the server is paused.
        await using var server = new ThrowawayRedis(timeoutSeconds: 60);
        await server.StartAsync(ct);
        var adminOptions = RedisDriverSettings.Build(server.Settings);
        adminOptions.AllowAdmin = true;
        await using var admin = await ConnectionMultiplexer.ConnectAsync(adminOptions);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(server.Settings));
        var limiter = Limiter(redis, 5, TimeSpan.FromMinutes(1));
        RateLimiter adapter = limiter.ForKey("paused");
        Assert.True((await limiter.TryAcquireAsync("paused", 1, ct)).Allowed);
        var adminServer = admin.GetServers().Single();
        await adminServer.ExecuteAsync("CLIENT", "PAUSE", "30000", "WRITE");
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var direct = limiter.TryAcquireAsync("paused", 1, cts.Token).AsTask();
            var leased = adapter.AcquireAsync(1, cts.Token).AsTask();
            Assert.False(direct.IsCompleted || leased.IsCompleted, "Redis answered while paused");
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Poll.WithinAsync(direct, "the cancelled call"));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Poll.WithinAsync(leased, "the cancelled adapter call"));
            Assert.Equal((0, 0), (adapter.GetStatistics()!.TotalSuccessfulLeases, adapter.GetStatistics()!.TotalFailedLeases));
        }
        finally
        {
            await adminServer.ExecuteAsync("CLIENT", "UNPAUSE");
        }
        // Both decisions had been sent: Redis takes them once it runs again, so their permits are recorded.
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "paused");
        await Poll.UntilAsync(async () => await admin.GetDatabase().SortedSetLengthAsync(log) == 3, "the cancelled calls' decisions to be recorded", ct);
        Assert.Equal(2, (await limiter.TryAcquireAsync("paused", 0, ct)).Remaining);
    }

    [Fact]
    public async Task Unreachable_redis_throws_when_asked_to()
    {
        using var redis = RedisServers.Unreachable();
        var limiter = Limiter(redis, 5, TimeSpan.FromSeconds(1), RedisFailureMode.Throw);
        await Assert.ThrowsAnyAsync<RedisException>(async () => await limiter.TryAcquireAsync("x", 1, TestContext.Current.CancellationToken));
    }

    [Fact]
    public void Bad_options_name_the_option()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RedisSlidingWindowRateLimiter(RedisServers.Standalone, new RedisSlidingWindowOptions { PermitLimit = 0 }));
        Assert.Equal("PermitLimit", e.ParamName);
        var p = Assert.Throws<ArgumentException>(() => new RedisSlidingWindowRateLimiter(RedisServers.Standalone, new RedisSlidingWindowOptions { KeyPrefix = "a{b}" }));
        Assert.Equal("KeyPrefix", p.ParamName);
    }
}
