using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// The spans and instruments of the cache, the limiter and the locks against the real server. Each test uses a key
/// prefix of its own and finds its spans and measurements by it, since listeners see every test class running in parallel.
/// </summary>
public sealed class RedisTelemetryTests : IDisposable
{
    private readonly string _prefix = TestServers.UniqueName("tele");
    private readonly ActivityCapture _spans = new(RedisTelemetry.ActivitySourceName);
    private readonly MetricCapture _metrics = new(RedisTelemetry.MeterName);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        _spans.Dispose();
        _metrics.Dispose();
    }

    private IReadOnlyList<Activity> Spans(string operation) => [.. _spans.WithTag("polystore.redis.prefix", _prefix).Where(a => a.DisplayName == $"{operation} {_prefix}")];

    private double Count(string instrument, string? tag = null, object? value = null) =>
        _metrics.Of(instrument, "prefix", _prefix).Where(m => tag is null || Equals(m.Tags[tag], value)).Sum(m => m.Value);

    [Fact]
    public async Task Cache_reads_name_the_level_that_served_them_and_are_counted_per_level()
    {
        await using var cache = await RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions { KeyPrefix = _prefix, UseL1 = true }, Ct);
        Task<User?> Load(CancellationToken _) => Task.FromResult<User?>(new User(1, "Ada"));
        await cache.GetOrSetAsync("u1", Load, cancellationToken: Ct);   // factory
        await cache.GetOrSetAsync("u1", Load, cancellationToken: Ct);   // l1
        await using (var other = await RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions { KeyPrefix = _prefix, UseL1 = true }, Ct))
            await other.GetOrSetAsync("u1", Load, cancellationToken: Ct);   // another instance: l1 miss, l2 hit
        await cache.SetAsync("u2", new User(2, "Bob"), cancellationToken: Ct);
        var (found, _) = await cache.TryGetAsync<User>("nothing", Ct);
        Assert.False(found);

        var gets = Spans("cache_get");
        Assert.Equal(["factory", "l1", "l2", "none"], gets.Select(g => g.GetTagItem("polystore.cache.hit_level")));
        Assert.All(gets, g => Assert.Equal("redis", g.GetTagItem("db.system.name")));
        var set = Assert.Single(Spans("cache_set"));
        Assert.Equal(true, set.GetTagItem("polystore.cache.stored"));

        Assert.Equal(1, Count(RedisMetrics.CacheHits, "level", "l1"));
        Assert.Equal(1, Count(RedisMetrics.CacheHits, "level", "l2"));
        Assert.Equal(3, Count(RedisMetrics.CacheMisses, "level", "l1"));  // the first read, the other instance's, the TryGet
        Assert.Equal(2, Count(RedisMetrics.CacheMisses, "level", "l2"));  // the factory's read and the TryGet
        Assert.Equal(1, Count(RedisMetrics.CacheFactoryCalls));
        Assert.All(_metrics.Of(RedisMetrics.CacheHits, "prefix", _prefix), m => Assert.Equal("{hit}", m.Unit));
    }

    [Fact]
    public async Task Callers_that_join_a_load_in_progress_are_counted_as_stampede_merges_and_the_factory_nests_under_the_first()
    {
        await using var cache = await RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions { KeyPrefix = _prefix }, Ct);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Activity? factoryParent = null;
        var first = cache.GetOrSetAsync<User>("hot", async _ =>
        {
            factoryParent = Activity.Current;
            entered.SetResult();
            await release.Task;
            return new User(7, "Hot");
        }, cancellationToken: Ct).AsTask();
        await entered.Task.WaitAsync(Ct);
        var joiners = Enumerable.Range(0, 4).Select(_ => cache.GetOrSetAsync<User>("hot", _ => throw new InvalidOperationException("the load in progress serves this"), cancellationToken: Ct).AsTask()).ToList();
        release.SetResult();
        await Task.WhenAll([first, .. joiners]);

        var gets = Spans("cache_get");
        Assert.Equal(5, gets.Count);
        Assert.All(gets, g => Assert.Equal("factory", g.GetTagItem("polystore.cache.hit_level")));
        Assert.Equal(4, gets.Count(g => Equals(g.GetTagItem("polystore.cache.stampede_merged"), true)));
        var starter = Assert.Single(gets, g => Equals(g.GetTagItem("polystore.cache.stampede_merged"), false));
        Assert.Equal(starter.SpanId, factoryParent!.SpanId);
        Assert.Equal(4, Count(RedisMetrics.CacheStampedeMerges));
        Assert.Equal(1, Count(RedisMetrics.CacheFactoryCalls));
    }

    [Fact]
    public async Task A_fill_not_cached_because_its_key_was_removed_meanwhile_is_counted()
    {
        await using var cache = await RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions { KeyPrefix = _prefix }, Ct);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fill = cache.GetOrSetAsync<User>("raced", async _ =>
        {
            entered.SetResult();
            await release.Task;
            return new User(8, "Old");
        }, cancellationToken: Ct).AsTask();
        await entered.Task.WaitAsync(Ct);
        await cache.RemoveAsync("raced", Ct);
        release.SetResult();
        await fill;

        Assert.Equal(1, Count(RedisMetrics.CacheFillsDiscarded, "reason", "changed"));
        Assert.All(_metrics.Of(RedisMetrics.CacheFillsDiscarded, "prefix", _prefix), m => Assert.Equal("{call}", m.Unit));
    }

    [Fact]
    public async Task A_failing_factory_ends_the_read_spans_in_error()
    {
        await using var cache = await RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions { KeyPrefix = _prefix }, Ct);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await cache.GetOrSetAsync<User>("bad", _ => throw new InvalidOperationException("source down"), cancellationToken: Ct));

        var get = Assert.Single(Spans("cache_get"));
        Assert.Equal((ActivityStatusCode.Error, typeof(InvalidOperationException).FullName), (get.Status, get.GetTagItem("error.type")));
    }

    [Fact]
    public async Task Rate_limit_decisions_are_spans_with_allowed_and_remaining_and_are_counted_by_outcome()
    {
        var limiter = new RedisSlidingWindowRateLimiter(RedisServers.Standalone, new RedisSlidingWindowOptions { PermitLimit = 2, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix });
        var decisions = new List<RateLimitDecision>();
        for (var i = 0; i < 3; i++) decisions.Add(await limiter.TryAcquireAsync("client", cancellationToken: Ct));
        Assert.Equal([true, true, false], decisions.Select(d => d.Allowed));

        var spans = Spans("rate_limit");
        Assert.Equal([(true, 1L), (true, 0L), (false, 0L)], spans.Select(s => ((bool)s.GetTagItem("polystore.ratelimit.allowed")!, (long)s.GetTagItem("polystore.ratelimit.remaining")!)));
        Assert.All(spans, s => Assert.Equal((1, false), (s.GetTagItem("polystore.ratelimit.permits"), s.GetTagItem("polystore.ratelimit.fallback"))));
        Assert.True((double)spans[2].GetTagItem("polystore.ratelimit.retry_after")! > 0);
        Assert.Equal(2, Count(RedisMetrics.RateLimitDecisions, "outcome", "allowed"));
        Assert.Equal(1, Count(RedisMetrics.RateLimitDecisions, "outcome", "denied"));
        // Bad input still throws at the call, listened to or not.
        Assert.Throws<ArgumentOutOfRangeException>(() => limiter.TryAcquireAsync("client", 3, Ct));
    }

    [Fact]
    public async Task Locks_report_the_wait_the_fencing_token_the_hold_and_contention()
    {
        var provider = new RedisLockProvider(RedisServers.Standalone, new RedisLockOptions { KeyPrefix = _prefix, Expiry = TimeSpan.FromSeconds(30), MinBackoff = TimeSpan.FromMilliseconds(5) });
        using var source = new ActivitySource("Polystore.Tests.Locks");
        using var caller = new ActivityCapture("Polystore.Tests.Locks");
        using var work = source.StartActivity("work");
        var held = await provider.AcquireAsync("job", TimeSpan.FromSeconds(5), Ct);
        // A second owner waits until the first lets go.
        var waiting = provider.AcquireAsync("job", TimeSpan.FromSeconds(30), Ct).AsTask();
        await PollUntilContendedAsync();
        Assert.True(await held.ReleaseAsync(Ct));
        var second = await waiting;
        await second.DisposeAsync();
        Assert.Null(await provider.TryAcquireAsync(ResourceHeldElsewhere(), TimeSpan.Zero, Ct));
        work!.Stop();

        var acquires = Spans("lock_acquire");
        Assert.Equal(3, acquires.Count);
        var byToken = acquires.Where(a => Equals(a.GetTagItem("polystore.lock.acquired"), true)).OrderBy(a => (long)a.GetTagItem("polystore.lock.fencing_token")!).ToList();
        Assert.Equal([held.FencingToken, second.FencingToken], byToken.Select(a => (long)a.GetTagItem("polystore.lock.fencing_token")!));
        Assert.All(acquires, a => Assert.Equal(work.SpanId, a.ParentSpanId));
        Assert.Equal("job", byToken[0].GetTagItem("polystore.lock.resource"));
        Assert.True((double)byToken[1].GetTagItem("polystore.lock.wait")! > 0);
        Assert.Single(acquires, a => Equals(a.GetTagItem("polystore.lock.acquired"), false));

        var holds = Spans("lock_hold");
        Assert.Equal(["release", "dispose"], holds.Select(h => h.GetTagItem("polystore.lock.released_by")));
        Assert.All(holds, h => Assert.Equal(work.SpanId, h.ParentSpanId));
        Assert.Equal(held.FencingToken, holds[0].GetTagItem("polystore.lock.fencing_token"));
        var release = Assert.Single(Spans("lock_release"));
        Assert.Equal((true, held.FencingToken), (release.GetTagItem("polystore.lock.released"), release.GetTagItem("polystore.lock.fencing_token")));

        var durations = _metrics.Of(RedisMetrics.LockAcquireDuration, "prefix", _prefix);
        Assert.Equal(2, durations.Count(d => Equals(d.Tags["outcome"], "acquired")));
        Assert.Single(durations, d => Equals(d.Tags["outcome"], "timeout"));
        Assert.All(durations, d => Assert.Equal("s", d.Unit));
        Assert.True(Count(RedisMetrics.LockContention) >= 2, "the waiting owner and the one-attempt acquire found the lock held");
    }

    [Fact]
    public async Task A_wait_the_caller_cancels_is_recorded_as_cancelled_not_as_a_failure()
    {
        var provider = new RedisLockProvider(RedisServers.Standalone, new RedisLockOptions { KeyPrefix = _prefix, Expiry = TimeSpan.FromSeconds(30) });
        await using var held = await provider.AcquireAsync("busy", TimeSpan.Zero, Ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var waiting = provider.AcquireAsync("busy", Timeout.InfiniteTimeSpan, cts.Token).AsTask();
        await PollUntilContendedAsync();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);

        // The caller gave up: not an error of the lock (no Error status, no failed measurement), and the span says so.
        var acquire = Assert.Single(Spans("lock_acquire"), a => !Equals(a.GetTagItem("polystore.lock.acquired"), true));
        Assert.Equal((ActivityStatusCode.Unset, null), (acquire.Status, acquire.GetTagItem("error.type")));
        Assert.Equal((false, true), (acquire.GetTagItem("polystore.lock.acquired"), acquire.GetTagItem("polystore.lock.cancelled")));
        var durations = _metrics.Of(RedisMetrics.LockAcquireDuration, "prefix", _prefix);
        Assert.Single(durations, d => Equals(d.Tags["outcome"], "cancelled"));
        Assert.DoesNotContain(durations, d => Equals(d.Tags["outcome"], "failed"));
    }

    // The one-attempt acquire of the test above finds this resource held by an owner outside the provider.
    private string ResourceHeldElsewhere()
    {
        var keys = RedisKeys.Key(RedisKeys.TagStart(_prefix), "taken", ":lock");
        RedisServers.Standalone.GetDatabase().StringSet(keys, "someone else", TimeSpan.FromSeconds(30));
        return "taken";
    }

    private async Task PollUntilContendedAsync()
    {
        for (var i = 0; i < 1000 && Count(RedisMetrics.LockContention) == 0; i++) await Task.Delay(10, Ct);
        Assert.True(Count(RedisMetrics.LockContention) > 0, "the second owner never found the lock held");
    }

    [Fact]
    public async Task The_logger_factory_reaches_StackExchange_Redis()
    {
        var logs = new LogCapture();
        var options = RedisDriverSettings.Build(TestServers.Redis, logs);
        Assert.Same(logs, options.LoggerFactory);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(options);
        Assert.True(redis.IsConnected);
        // The multiplexer's own connection log: it connected, authenticated, and masked the password in its configuration line.
        var lines = logs.Logs.Where(l => l.Category == "StackExchange.Redis.ConnectionMultiplexer").ToList();
        Assert.Contains(lines, l => l.Message.EndsWith("Connected", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Message.Contains("Authenticating", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Logs, l => TestServers.Redis.Connection.Password is { Length: > 0 } password && l.Message.Contains(password, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_TryGet_that_fails_ends_its_cache_get_span_in_error()
    {
        await using var cache = await RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions { KeyPrefix = _prefix, UseL1 = false }, Ct);
        // The entry's key holds a list: GET answers WRONGTYPE, an error Redis being up does not hide.
        var db = RedisServers.Standalone.GetDatabase();
        var entryKey = cache.RedisKeyOf("broken");
        await db.ListLeftPushAsync(entryKey, "x");
        try
        {
            await Assert.ThrowsAnyAsync<RedisException>(async () => await cache.TryGetAsync<User>("broken", Ct));
        }
        finally
        {
            await db.KeyDeleteAsync(entryKey);
        }

        var get = Assert.Single(Spans("cache_get"));
        // docs/observability.md: "A failed operation ends its span with status Error ..., error.type, and the exception recorded".
        Assert.Equal(ActivityStatusCode.Error, get.Status);
        Assert.NotNull(get.GetTagItem("error.type"));
    }

    [Fact]
    public async Task A_lease_that_runs_out_while_held_is_counted_and_marked_on_the_hold_span()
    {
        var provider = new Polystore.Redis.Locking.RedisLockProvider(RedisServers.Standalone, new Polystore.Redis.Locking.RedisLockOptions { KeyPrefix = _prefix, Expiry = TimeSpan.FromMilliseconds(300) });
        var held = await provider.AcquireAsync("job", TimeSpan.FromSeconds(5), Ct);
        var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (held.LostToken.Register(() => lost.TrySetResult()))
            await lost.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);   // the lease ran out: LostToken fired
        Assert.False(held.IsHeld);
        await held.DisposeAsync();

        // docs/observability.md: lock_hold gets "a lock_lost event (polystore.lock.lost_reason) when the lease is lost while held",
        // and polystore.redis.lock.lost counts "lock leases lost before release".
        var hold = Assert.Single(_spans.WithTag("polystore.redis.prefix", _prefix), a => a.DisplayName == $"lock_hold {_prefix}");
        Assert.Multiple(
            () => Assert.Contains(hold.Events, e => e.Name == "lock_lost"),
            () => Assert.NotEmpty(_metrics.Of(RedisMetrics.LocksLost, "reason", "expired")));
    }
}
