using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed class CircuitBreakerTests
{
    private readonly string _prefix = TestServers.UniqueName("breaker");

    [Fact]
    public async Task Components_of_one_connection_with_equal_options_share_one_breaker()
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Standalone;
        var options = new RedisCircuitBreakerOptions { FailureThreshold = 7, TimeProvider = new FakeTimeProvider() };
        await using var cache = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = _prefix + ":c", CircuitBreaker = options }, ct);
        var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions { KeyPrefix = _prefix + ":rl", CircuitBreaker = options with { } });
        var locks = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = _prefix + ":l", CircuitBreaker = options with { } });
        var breakers = RedisCircuitBreaker.Of(redis).Where(b => ReferenceEquals(b, locks.Breaker)).ToList();
        Assert.Single(breakers);
        Assert.Same(locks.Breaker, RedisCircuitBreaker.For(redis, options, null));
        // Other options: a breaker of their own.
        Assert.NotSame(locks.Breaker, RedisCircuitBreaker.For(redis, options with { FailureThreshold = 8 }, null));
        Assert.True((await limiter.TryAcquireAsync("k", 1, ct)).Allowed);
    }

    [Fact]
    public async Task Timeouts_open_the_breaker_calls_then_skip_Redis_and_a_PING_closes_it_once_Redis_answers()
    {
        var ct = TestContext.Current.CancellationToken;
        // A server paused for writes: scripts wait unanswered (the socket timeout is a minute), so only the operation
        // timeout ends them. Its clock is fake, so the test decides when each bound and the break run out.
        await using var paused = await PausableRedis.StartAsync(timeoutSeconds: 60);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var breakerOptions = new RedisCircuitBreakerOptions
        {
            FailureThreshold = 3, FailureWindow = TimeSpan.FromMinutes(1), BreakDuration = TimeSpan.FromSeconds(10), OperationTimeout = TimeSpan.FromSeconds(1), TimeProvider = time,
        };
        var logs = new CapturedLogs();
        var limiter = new RedisSlidingWindowRateLimiter(paused.Client, new RedisSlidingWindowOptions
        {
            PermitLimit = 100, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix, OnRedisFailure = RedisFailureMode.FailOpen, CircuitBreaker = breakerOptions,
        }, logs);
        var locks = new RedisLockProvider(paused.Client, new RedisLockOptions { KeyPrefix = _prefix + ":lock", CircuitBreaker = breakerOptions }, logs);
        await using var cache = await RedisTieredCache.CreateAsync(paused.Client, new RedisTieredCacheOptions { KeyPrefix = _prefix + ":cache", CircuitBreaker = breakerOptions }, logs, ct);
        var breaker = locks.Breaker;
        Assert.True((await limiter.TryAcquireAsync("k", 1, ct)).Allowed);
        Assert.Equal(RedisCircuitBreaker.Closed, breaker.State);

        var shortCircuited = new List<string>();
        var states = new List<int>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == RedisMetrics.MeterName && i.Name is RedisMetrics.CircuitBreakerShortCircuited or RedisMetrics.CircuitBreakerState) l.EnableMeasurementEvents(i);
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            string? component = null, connection = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "component") component = (string?)tag.Value;
                if (tag.Key == "connection") connection = (string?)tag.Value;
            }
            if (connection == breaker.Connection) lock (shortCircuited) shortCircuited.Add(component!);
        });
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "connection" && (string?)tag.Value == breaker.Connection) lock (states) states.Add(value);
        });
        listener.Start();

        await paused.PauseAsync();
        // Three decisions on the wire (three script calls, from three limiters of the same options: they share the
        // connection's breaker, and one limiter would queue the second and third behind the first): the operation
        // timeout ends each, and the third failure opens the breaker.
        var others = Enumerable.Range(0, 2).Select(_ => new RedisSlidingWindowRateLimiter(paused.Client, limiter.Options, logs)).ToArray();
        var calls = new[] { limiter, others[0], others[1] }.Select((l, i) => l.TryAcquireAsync("k" + i, 1, ct).AsTask()).ToArray();
        Assert.DoesNotContain(calls, c => c.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        foreach (var call in calls) Assert.Equal((true, true), Pick(await Poll.WithinAsync(call, "a timed-out decision")));
        Assert.Equal(RedisCircuitBreaker.Open, breaker.State);

        // Open: every component answers without Redis, at once (the calls complete before returning).
        var skipped = limiter.TryAcquireAsync("k", 1, ct);
        Assert.True(skipped.IsCompletedSuccessfully);
        Assert.Equal((true, true), Pick(await skipped));
        var factoryRan = 0;
        var value = cache.GetOrSetAsync("c", _ => { factoryRan++; return Task.FromResult<string?>("from the source"); }, cancellationToken: ct);
        Assert.Equal("from the source", await value);
        Assert.Equal(1, factoryRan);
        var refused = await Assert.ThrowsAsync<RedisConnectionException>(async () => await locks.TryAcquireAsync("r", TimeSpan.FromSeconds(5), ct));
        Assert.Contains("circuit breaker", refused.Message, StringComparison.Ordinal);
        Assert.Contains("'r' was not taken", refused.Message, StringComparison.Ordinal);
        var ping = Assert.Single(await RedisPing.PingAsync(paused.Client, ct));
        Assert.False(ping.Reachable);
        Assert.Contains("circuit breaker", ping.Error, StringComparison.Ordinal);
        Assert.EndsWith("circuit breaker open", ping.Details, StringComparison.Ordinal);
        listener.RecordObservableInstruments();
        lock (states) Assert.Equal(RedisCircuitBreaker.Open, states[^1]);
        lock (shortCircuited) Assert.Equal(["cache", "lock", "ping", "ratelimit"], shortCircuited.Distinct().Order());

        // Redis answers again, but the breaker only closes when its PING does, after the break.
        await paused.ResumeAsync();
        Assert.True((await limiter.TryAcquireAsync("k", 1, ct)).IsFallback);
        time.Advance(TimeSpan.FromSeconds(10));
        // The state changes under the breaker's lock; its log entry is written just after, outside it.
        await Poll.UntilAsync(() => breaker.State == RedisCircuitBreaker.Closed && logs.Count("RedisCircuitClosed") == 1, "the probe to close the breaker", ct);
        Assert.False((await limiter.TryAcquireAsync("k", 1, ct)).IsFallback);
        await using (var held = await locks.AcquireAsync("r", TimeSpan.Zero, ct)) Assert.True(held.FencingToken >= 1);
        Assert.True(Assert.Single(await RedisPing.PingAsync(paused.Client, ct)).Reachable);
        listener.RecordObservableInstruments();
        lock (states) Assert.Equal(RedisCircuitBreaker.Closed, states[^1]);

        // One entry per state change, however many calls were skipped.
        Assert.Equal(1, logs.Count("RedisCircuitOpened"));
        Assert.Equal(1, logs.Count("RedisCircuitHalfOpen"));
        Assert.Equal(1, logs.Count("RedisCircuitClosed"));
        Assert.Equal(0, logs.Count("RedisCircuitReopened"));
        Assert.All(logs.Entries.Where(e => e.Id.Name is "RedisCircuitOpened" or "RedisCircuitClosed"), e => Assert.Equal(LogLevel.Warning, e.Level));
        Assert.Equal([3101, 3102, 3104], logs.Entries.Select(e => e.Id.Id));
    }

    [Fact]
    public void The_reason_the_breaker_opened_hides_a_password_the_error_carried()
    {
        var logs = new CapturedLogs();
        // Options of its own (threshold 2, a clock that never moves): this breaker opens alone and never probes.
        var options = new RedisCircuitBreakerOptions { FailureThreshold = 2, FailureWindow = TimeSpan.FromHours(1), TimeProvider = new FakeTimeProvider(DateTimeOffset.UtcNow) };
        var breaker = RedisCircuitBreaker.For(RedisServers.Standalone, options, logs);
        var error = new RedisConnectionException(ConnectionFailureType.AuthenticationFailure, CommandFlags.None,
            "No connection to redis://app:s3cretpw@cache:6379 (password=s3cretpw,ssl=false)\nsecond line", null, CommandStatus.WaitingToBeSent);

        breaker.Failed(error);
        breaker.Failed(error);

        Assert.Equal(RedisCircuitBreaker.Open, breaker.State);
        var opened = Assert.Single(logs.Entries, e => e.Id.Name == "RedisCircuitOpened").Message;
        Assert.Contains("redis://app:***@cache:6379 (password=***,ssl=false)", opened);
        Assert.Contains("redis://app:***@cache:6379 (password=***,ssl=false)", breaker.Describe());
        Assert.DoesNotContain("s3cretpw", opened + breaker.Describe());
        Assert.DoesNotContain("second line", breaker.Describe());
    }

    [Fact]
    public async Task A_failed_probe_keeps_the_breaker_open_for_another_break()
    {
        var ct = TestContext.Current.CancellationToken;
        using var redis = RedisServers.Unreachable();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logs = new CapturedLogs();
        var options = new RedisCircuitBreakerOptions { BreakDuration = TimeSpan.FromSeconds(5), OperationTimeout = TimeSpan.FromMilliseconds(200), TimeProvider = time };
        var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions { KeyPrefix = _prefix, CircuitBreaker = options }, logs);
        var breaker = RedisCircuitBreaker.For(redis, options, null);
        // Never connected: open from the start, so no call waits for a timeout.
        Assert.Equal(RedisCircuitBreaker.Open, breaker.State);
        var d = limiter.TryAcquireAsync("k", 1, ct);
        Assert.True(d.IsCompletedSuccessfully);
        Assert.Equal((true, false), Pick(await d));

        // The probe's PING fails (at the latest when its bound runs out): open again, and a second probe follows the next break.
        time.Advance(TimeSpan.FromSeconds(5));
        await Poll.UntilAsync(() => { time.Advance(TimeSpan.FromMilliseconds(200)); return logs.Count("RedisCircuitReopened") >= 1; }, "the first probe to fail", ct);
        Assert.Equal(RedisCircuitBreaker.Open, breaker.State);
        time.Advance(TimeSpan.FromSeconds(5));
        await Poll.UntilAsync(() => { time.Advance(TimeSpan.FromMilliseconds(200)); return logs.Count("RedisCircuitReopened") >= 2; }, "the second probe to fail", ct);
        Assert.Equal(1, logs.Count("RedisCircuitOpened"));
        // The first probe of an outage is logged as information, later ones at debug level.
        Assert.Equal([LogLevel.Information, LogLevel.Debug], logs.Entries.Where(e => e.Id.Name == "RedisCircuitHalfOpen").Select(e => e.Level).Take(2));
    }

    [Fact]
    public async Task While_open_the_cache_serves_the_source_and_L1_and_throws_only_when_asked_to()
    {
        var ct = TestContext.Current.CancellationToken;
        using var redis = RedisServers.Unreachable();
        var options = new RedisCircuitBreakerOptions { TimeProvider = new FakeTimeProvider(DateTimeOffset.UtcNow) };
        // Constructed, not created: CreateAsync waits for the invalidation subscription, which fails at once while open.
        await using var withL1 = new RedisTieredCache(redis, new RedisTieredCacheOptions { KeyPrefix = _prefix, UseL1 = true, CircuitBreaker = options });
        var subscribing = await Assert.ThrowsAsync<RedisConnectionException>(() => RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = _prefix, UseL1 = true, CircuitBreaker = options }, ct));
        Assert.Contains("not subscribed yet", subscribing.Message, StringComparison.Ordinal);
        await using var strict = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = _prefix, ThrowOnRedisErrors = true, CircuitBreaker = options }, ct);
        var calls = 0;
        Task<string?> Source(CancellationToken _) => Task.FromResult<string?>($"v{Interlocked.Increment(ref calls)}");
        Assert.Equal("v1", await withL1.GetOrSetAsync("k", Source, cancellationToken: ct));
        Assert.Equal("v1", await withL1.GetOrSetAsync("k", Source, cancellationToken: ct)); // kept in L1
        await withL1.SetAsync("k2", "set", cancellationToken: ct);                       // never throws
        Assert.Equal((false, null), await withL1.TryGetAsync<string>("missing", ct));
        var e = await Assert.ThrowsAsync<RedisConnectionException>(async () => await strict.GetOrSetAsync("k", Source, cancellationToken: ct));
        Assert.Contains("circuit breaker", e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<RedisConnectionException>(() => withL1.RemoveByPrefixAsync("k", ct));
        await Assert.ThrowsAsync<RedisConnectionException>(() => withL1.RemoveAsync("k", ct));
    }

    [Fact]
    public void Bad_options_name_the_option()
    {
        var redis = RedisServers.Standalone;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RedisLockProvider(redis, new RedisLockOptions { CircuitBreaker = new() { FailureThreshold = 0 } }));
        Assert.Equal("CircuitBreaker.FailureThreshold", e.ParamName);
        var t = Assert.Throws<ArgumentOutOfRangeException>(() => new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions { CircuitBreaker = new() { OperationTimeout = TimeSpan.Zero } }));
        Assert.Equal("CircuitBreaker.OperationTimeout", t.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions { CircuitBreaker = new() { BreakDuration = TimeSpan.FromSeconds(-1) } }));
        // Infinite: the socket timeout alone bounds a call.
        _ = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = _prefix, CircuitBreaker = new() { OperationTimeout = Timeout.InfiniteTimeSpan } });
    }

    private static (bool Fallback, bool Allowed) Pick(RateLimitDecision d) => (d.IsFallback, d.Allowed);
}
