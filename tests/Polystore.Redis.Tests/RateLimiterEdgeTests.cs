using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>Decisions that must stay exact when one key, one decision or one key's text is unusual (each test reproduced a bug).</summary>
public sealed class RateLimiterEdgeTests
{
    private readonly string _prefix = TestServers.UniqueName("rl_edge");

    /// <summary>
    /// One key whose log exists with another type (WRONGTYPE in the script) makes the whole batch fail: callers of
    /// unrelated, healthy keys coalesced with it get a RedisServerException instead of their decision.
    /// </summary>
    [Fact]
    public async Task A_bad_key_fails_only_its_own_decision_not_the_others_coalesced_with_it()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var paused = await PausableRedis.StartAsync(timeoutSeconds: 60);
        var limiter = new RedisSlidingWindowRateLimiter(paused.Client, new RedisSlidingWindowOptions
        {
            PermitLimit = 10, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix, CircuitBreaker = RedisServers.PatientBreaker,
        });
        Assert.True((await limiter.TryAcquireAsync("warm", 1, ct)).Allowed); // script cached
        // Some other code wrote a plain string where the limiter keeps a sorted set.
        await paused.Admin.GetDatabase().StringSetAsync(RedisSlidingWindowRateLimiter.LogKey(_prefix, "bad"), "x");
        await paused.PauseAsync();
        Task<RateLimitDecision> first, good1, bad, good2;
        try
        {
            first = limiter.TryAcquireAsync("first", 1, ct).AsTask();   // goes alone, waits on the paused server
            good1 = limiter.TryAcquireAsync("good1", 1, ct).AsTask();   // these three queue behind it: one batch
            bad = limiter.TryAcquireAsync("bad", 1, ct).AsTask();
            good2 = limiter.TryAcquireAsync("good2", 1, ct).AsTask();
        }
        finally
        {
            await paused.ResumeAsync();
        }
        Assert.True((await Poll.WithinAsync(first, "first")).Allowed);
        await Assert.ThrowsAsync<RedisServerException>(() => Poll.WithinAsync(bad, "bad"));
        // The healthy keys have nothing wrong with them: they must get their decision.
        var d1 = await Record.ExceptionAsync(() => Poll.WithinAsync(good1, "good1"));
        var d2 = await Record.ExceptionAsync(() => Poll.WithinAsync(good2, "good2"));
        Assert.True(d1 is null && d2 is null, $"healthy keys failed because of another key in their batch: good1={d1?.GetType().Name}: {d1?.Message} | good2={d2?.GetType().Name}");
    }

    /// <summary>
    /// With WaitForReplicas and FailOpen, a decision Redis DENIED (key over its limit) is answered "allowed" when it
    /// happens to share a batch with an admission the replicas did not acknowledge. Alone, the same call is denied.
    /// </summary>
    [Fact]
    public async Task A_denial_from_Redis_is_never_turned_into_an_admission_by_a_replica_wait_on_another_decision()
    {
        var ct = TestContext.Current.CancellationToken;
        // A connection of its own: WAIT holds the connection (the standalone test server has no replica, so WAIT 1 waits its timeout).
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        var options = new RedisSlidingWindowOptions
        {
            PermitLimit = 2, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix, OnRedisFailure = RedisFailureMode.FailOpen,
            CircuitBreaker = RedisServers.PatientBreaker, RememberDenialsFor = TimeSpan.Zero,
        };
        var plain = new RedisSlidingWindowRateLimiter(redis, options);
        Assert.True((await plain.TryAcquireAsync("full", 2, ct)).Allowed); // "full" is at its limit
        var waiting = new RedisSlidingWindowRateLimiter(redis, options with { WaitForReplicas = 1, ReplicaWaitTimeout = TimeSpan.FromMilliseconds(300) });

        // Alone, Redis's denial stands (nothing admitted, nothing to acknowledge).
        var alone = await waiting.TryAcquireAsync("full", 1, ct);
        Assert.Equal((false, false), (alone.Allowed, alone.IsFallback));

        // Beside an admission on another key (the replica wait of the first call makes the next two share a batch).
        var warm = waiting.TryAcquireAsync("warm", 1, ct).AsTask();
        var full = waiting.TryAcquireAsync("full", 1, ct).AsTask();
        var fresh = waiting.TryAcquireAsync("fresh", 1, ct).AsTask();
        await Poll.WithinAsync(warm, "warm");
        await Poll.WithinAsync(fresh, "fresh");
        var d = await Poll.WithinAsync(full, "full");
        Assert.True(waiting.BatchesSent >= 2);
        Assert.False(d.Allowed, $"a key over its limit was admitted (IsFallback={d.IsFallback}) because another decision of its batch was not acknowledged");
    }

    /// <summary>A look (0 permits) writes nothing, yet with WaitForReplicas it is answered as "Redis unavailable" when no replica acknowledges.</summary>
    [Fact]
    public async Task A_look_that_wrote_nothing_is_not_answered_as_unavailable_for_want_of_a_replica_acknowledgement()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var redis = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
        {
            PermitLimit = 5, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix, OnRedisFailure = RedisFailureMode.FailClosed,
            CircuitBreaker = RedisServers.PatientBreaker, WaitForReplicas = 1, ReplicaWaitTimeout = TimeSpan.FromMilliseconds(100),
        });
        var look = await limiter.TryAcquireAsync("empty", 0, ct);
        Assert.Equal((true, false, 5L), (look.Allowed, look.IsFallback, look.Remaining));
    }

    /// <summary>"Keys are any string ... never share a window": two different strings with lone surrogates map to one Redis key.</summary>
    [Fact]
    public async Task A_key_with_a_lone_surrogate_is_refused_rather_than_sharing_a_window()
    {
        // A lone surrogate has no UTF-8 form: "user-\uD800" and "user-\uDBFF" would both reach Redis as "user-\uFFFD".
        var ct = TestContext.Current.CancellationToken;
        var limiter = new RedisSlidingWindowRateLimiter(RedisServers.Standalone, new RedisSlidingWindowOptions
        {
            PermitLimit = 1, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix, CircuitBreaker = RedisServers.PatientBreaker,
        });
        var e = await Assert.ThrowsAsync<ArgumentException>(async () => await limiter.TryAcquireAsync("user-\uD800", 1, ct));
        Assert.Contains("lone surrogate (U+D800) at index 5", e.Message, StringComparison.Ordinal);
        Assert.True((await limiter.TryAcquireAsync("user-\uFFFD", 1, ct)).Allowed);
        Assert.True((await limiter.TryAcquireAsync("user-\uD83D\uDE00", 1, ct)).Allowed); // a pair is a character like any other
    }
}
