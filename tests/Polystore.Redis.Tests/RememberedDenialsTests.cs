using System.Collections.Concurrent;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;

namespace Polystore.Redis.Tests;

/// <summary>
/// A key known to be over its limit is denied in the process, without a round trip, until the entry that frees a
/// permit leaves the window: never an admission over the limit, and Redis is asked again once room may exist.
/// </summary>
public sealed class RememberedDenialsTests
{
    private readonly string _prefix = TestServers.UniqueName("rd");

    private RedisSlidingWindowRateLimiter Limiter(StackExchange.Redis.IConnectionMultiplexer redis, int limit, TimeSpan window,
        RedisFailureMode mode = RedisFailureMode.FailClosed, TimeSpan? remember = null) =>
        new(redis, new RedisSlidingWindowOptions
        {
            PermitLimit = limit, Window = window, KeyPrefix = _prefix, OnRedisFailure = mode,
            RememberDenialsFor = remember ?? new RedisSlidingWindowOptions().RememberDenialsFor,
            CircuitBreaker = RedisServers.PatientBreaker,
        });

    [Fact]
    public async Task A_denial_answered_from_memory_still_says_how_long_the_wait_in_redis_is()
    {
        var ct = TestContext.Current.CancellationToken;
        // The memory (20 s) ends long before the permit frees up (10 min): its answers must still tell the real wait.
        var limiter = Limiter(RedisServers.Standalone, 1, TimeSpan.FromMinutes(10), remember: TimeSpan.FromSeconds(20));
        Assert.True((await limiter.TryAcquireAsync("wait", 1, ct)).Allowed);
        var denied = await limiter.TryAcquireAsync("wait", 1, ct);
        Assert.False(denied.Allowed);
        var local = await limiter.TryAcquireAsync("wait", 1, ct);
        Assert.Equal(1, limiter.DecisionsAnsweredLocally);
        Assert.False(local.Allowed);
        Assert.True(local.RetryAfter > TimeSpan.FromMinutes(5) && local.RetryAfter <= denied.RetryAfter, $"retry-after {local.RetryAfter} from memory, {denied.RetryAfter} from Redis");
    }

    [Fact]
    public async Task A_denial_is_answered_locally_until_the_window_frees_a_permit_then_Redis_admits_again()
    {
        var ct = TestContext.Current.CancellationToken;
        // A window long enough that a stalled test machine cannot let the first permit expire before the third call.
        var limiter = Limiter(RedisServers.Standalone, 2, TimeSpan.FromSeconds(3), remember: TimeSpan.FromMinutes(1));
        Assert.True((await limiter.TryAcquireAsync("k", 1, ct)).Allowed);
        Assert.True((await limiter.TryAcquireAsync("k", 1, ct)).Allowed);
        var denied = await limiter.TryAcquireAsync("k", 1, ct);
        Assert.False(denied.Allowed);
        var sent = limiter.DecisionsSent;
        for (var i = 0; i < 50; i++)
        {
            var again = await limiter.TryAcquireAsync("k", 1, ct);
            Assert.False(again.Allowed || again.IsFallback);
            Assert.True(again.RetryAfter <= denied.RetryAfter && again.ServerTimeMicroseconds >= denied.ServerTimeMicroseconds);
        }
        Assert.Equal(sent, limiter.DecisionsSent);
        Assert.Equal(50, limiter.DecisionsAnsweredLocally);
        // Another key and another weight are not covered by that denial.
        Assert.True((await limiter.TryAcquireAsync("other", 1, ct)).Allowed);
        Assert.False((await limiter.TryAcquireAsync("k", 2, ct)).Allowed);
        Assert.Equal(sent + 2, limiter.DecisionsSent);
        // The memory ends with the retry-after (here well before the minute allowed): the key is admitted again.
        await Poll.UntilAsync(async () => (await limiter.TryAcquireAsync("k", 1, ct)).Allowed, "the key to admit again once its oldest entry left the window", ct);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Many_tasks_on_a_few_hot_keys_never_exceed_the_limit_and_most_denials_stay_local(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var window = TimeSpan.FromMilliseconds(300);
        const int limit = 15;
        var limiter = Limiter(RedisServers.Get(kind), limit, window);
        var admitted = new ConcurrentDictionary<string, ConcurrentBag<long>>();
        var denied = 0;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(t => Task.Run(async () =>
        {
            for (var i = 0; i < 200; i++)
            {
                var key = $"hot{(t + i) % 4}";
                var d = await limiter.TryAcquireAsync(key, 1, ct);
                Assert.False(d.IsFallback);
                if (d.Allowed) admitted.GetOrAdd(key, _ => []).Add(d.ServerTimeMicroseconds);
                else
                {
                    Interlocked.Increment(ref denied);
                    Assert.True(d.RetryAfter > TimeSpan.Zero && d.RetryAfter <= window, $"retry-after {d.RetryAfter}");
                }
            }
        }, ct)));
        Assert.Equal(64 * 200, admitted.Values.Sum(b => b.Count) + denied);
        Assert.True(limiter.DecisionsAnsweredLocally > 0, "no denial was answered from memory");
        Assert.Equal(64 * 200, limiter.DecisionsSent + limiter.DecisionsAnsweredLocally);
        foreach (var times in admitted.Values) RateLimiterTests.AssertNeverOverLimit(times, (long)window.TotalMicroseconds, limit);
    }

    [Fact]
    public async Task A_remembered_denial_answers_while_Redis_does_not_instead_of_the_failure_mode()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var paused = await PausableRedis.StartAsync(timeoutSeconds: 1);
        var limiter = Limiter(paused.Client, 1, TimeSpan.FromMinutes(1), RedisFailureMode.FailOpen);
        Assert.True((await limiter.TryAcquireAsync("full", 1, ct)).Allowed);
        Assert.False((await limiter.TryAcquireAsync("full", 1, ct)).Allowed);
        await paused.PauseAsync();
        try
        {
            // Fail open would admit; the key is known to be full, so it is denied (and nothing waits on Redis).
            var d = await Poll.WithinAsync(limiter.TryAcquireAsync("full", 1, ct).AsTask(), "the remembered denial");
            Assert.Equal((false, false), (d.Allowed, d.IsFallback));
            // A key nobody knows gets the failure mode.
            var unknown = await Poll.WithinAsync(limiter.TryAcquireAsync("unknown", 1, ct).AsTask(), "the fallback decision");
            Assert.Equal((true, true), (unknown.Allowed, unknown.IsFallback));
        }
        finally
        {
            await paused.ResumeAsync();
        }
    }

    [Fact]
    public async Task A_permit_given_back_by_this_process_makes_it_ask_Redis_again()
    {
        // Weight 2 is denied and remembered with 2 of 3 permits taken. A call of weight 1 is cancelled while Redis is
        // paused; Redis admits it once running again, and as nobody received it, its permit is given back: the room
        // that makes may fit the remembered weight, so the next call of weight 2 must go to Redis, not to memory.
        var ct = TestContext.Current.CancellationToken;
        await using var paused = await PausableRedis.StartAsync(timeoutSeconds: 60);
        var limiter = Limiter(paused.Client, 3, TimeSpan.FromMinutes(1), remember: TimeSpan.FromMinutes(1));
        Assert.True((await limiter.TryAcquireAsync("k", 2, ct)).Allowed);
        Assert.False((await limiter.TryAcquireAsync("k", 2, ct)).Allowed);
        Assert.False((await limiter.TryAcquireAsync("k", 2, ct)).Allowed);
        Assert.Equal(1, limiter.DecisionsAnsweredLocally);
        await paused.PauseAsync();
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var cancelled = limiter.TryAcquireAsync("k", 1, cts.Token).AsTask();
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Poll.WithinAsync(cancelled, "the cancelled call"));
        }
        finally
        {
            await paused.ResumeAsync();
        }
        await Poll.UntilAsync(() => limiter.PermitsGivenBack == 1, "the cancelled call's permit to be given back", ct);
        var sent = limiter.DecisionsSent;
        Assert.False((await limiter.TryAcquireAsync("k", 2, ct)).Allowed); // 2 taken + 2 > 3, as Redis says
        Assert.Equal((sent + 1, 1L), (limiter.DecisionsSent, limiter.DecisionsAnsweredLocally));
    }

    [Fact]
    public async Task Turned_off_every_decision_goes_to_Redis()
    {
        var ct = TestContext.Current.CancellationToken;
        var limiter = Limiter(RedisServers.Standalone, 1, TimeSpan.FromMinutes(1), remember: TimeSpan.Zero);
        var sent = limiter.DecisionsSent;
        for (var i = 0; i < 20; i++) Assert.Equal(i == 0, (await limiter.TryAcquireAsync("k", 1, ct)).Allowed);
        Assert.Equal((sent + 20, 0L), (limiter.DecisionsSent, limiter.DecisionsAnsweredLocally));
    }

    [Fact]
    public void The_memory_is_bounded_forgets_a_key_on_request_and_never_keeps_an_admission_or_a_fallback()
    {
        var denials = new RememberedDenials(TimeSpan.FromMinutes(1));
        var at = System.Diagnostics.Stopwatch.GetTimestamp();
        var denial = new RateLimitDecision(false, 0, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(40), 1);
        denials.Remember("a", 1, denial, at);
        Assert.True(denials.TryAnswer("a", 1, out var answer) && !answer.Allowed);
        Assert.False(denials.TryAnswer("a", 2, out _));
        denials.Forget("a");
        Assert.False(denials.TryAnswer("a", 1, out _));
        denials.Remember("b", 1, denial with { Allowed = true }, at);
        denials.Remember("c", 1, denial with { IsFallback = true }, at);
        denials.Remember("d", 0, denial, at);
        Assert.Equal(0, denials.Count);
        for (var i = 0; i < RememberedDenials.Capacity + 10; i++) denials.Remember($"k{i}", 1, denial, at);
        Assert.InRange(denials.Count, 1, RememberedDenials.Capacity);
        // A denial whose deadline passed is not an answer.
        denials.Remember("old", 1, denial, at - (long)(60 * System.Diagnostics.Stopwatch.Frequency));
        Assert.False(denials.TryAnswer("old", 1, out _));
    }

    [Fact]
    public async Task Concurrent_remembers_and_forgets_keep_the_count_equal_to_the_keys_held()
    {
        // The count bounds the memory (65,536 keys): it must never drift from the keys actually held.
        var denials = new RememberedDenials(TimeSpan.FromMinutes(1));
        var denied = new RateLimitDecision(false, 0, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30), 0);
        var keys = Enumerable.Range(0, 8).Select(i => $"k{i}").ToArray();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < 20_000; i++)
            {
                var key = keys[(t + i) % keys.Length];
                if ((i & 1) == 0) denials.Remember(key, 1, denied, System.Diagnostics.Stopwatch.GetTimestamp());
                else denials.Forget(key);
            }
        }, TestContext.Current.CancellationToken)));

        var held = keys.Count(k => denials.TryAnswer(k, 1, out _));
        Assert.Equal(held, denials.Count);
        foreach (var key in keys) denials.Forget(key);
        Assert.Equal(0, denials.Count);
    }
}
