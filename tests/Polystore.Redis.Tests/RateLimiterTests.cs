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

    private RedisSlidingWindowRateLimiter Limiter(IConnectionMultiplexer redis, int limit, TimeSpan window, RedisFailureMode mode = RedisFailureMode.FailClosed, bool rememberDenials = true) =>
        new(redis, new RedisSlidingWindowOptions
        {
            PermitLimit = limit, Window = window, KeyPrefix = _prefix, OnRedisFailure = mode,
            RememberDenialsFor = rememberDenials ? new RedisSlidingWindowOptions().RememberDenialsFor : TimeSpan.Zero,
            CircuitBreaker = RedisServers.PatientBreaker,
        });

    /// <summary>For every admitted timestamp t: admitted entries in (t - window, t] never exceed the limit.</summary>
    internal static void AssertNeverOverLimit(IEnumerable<long> admittedMicros, long windowMicros, int limit)
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
        // A window long enough that the denied calls below all fall inside it even on a loaded machine (Redis's clock decides).
        var limiter = Limiter(redis, 3, TimeSpan.FromSeconds(3));
        for (var i = 0; i < 3; i++) Assert.True((await limiter.TryAcquireAsync("k", 1, ct)).Allowed);
        RateLimitDecision denied = default;
        for (var i = 0; i < 20; i++)
        {
            denied = await limiter.TryAcquireAsync("k", 1, ct);
            Assert.False(denied.Allowed);
        }
        Assert.Equal(3, await redis.GetDatabase().SortedSetLengthAsync(RedisSlidingWindowRateLimiter.LogKey(_prefix, "k")));
        Assert.Equal(0, denied.Remaining);
        Assert.InRange(denied.RetryAfter, TimeSpan.FromTicks(1), TimeSpan.FromSeconds(3));
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
        // All decisions of one script call share one server time (and, called like this, without an instance id
        // their entries are named after it): 3 decisions of 2 permits on one key must still leave 3 distinct
        // entries of weight 2, count down 10, 8, 6, and hold the extra weight (3) in "#".
        var db = RedisServers.Get(kind).GetDatabase();
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "batch");
        var result = (RedisResult[])(await RedisSlidingWindowRateLimiter.Script.EvaluateAsync(db, [log, log, log], [60_000_000, 12, 2, 2, 2]))!;
        Assert.Equal([10L, 8L, 6L], result.Skip(1).Select(r => (long)r));
        var entries = await db.SortedSetRangeByScoreWithScoresAsync(log, 0);
        Assert.Equal(3, entries.Length);
        Assert.All(entries, e => Assert.EndsWith("*2", e.Element.ToString(), StringComparison.Ordinal));
        Assert.Single(entries.Select(e => e.Score).Distinct());
        Assert.Equal((double)(long)result[0], entries[0].Score);
        Assert.Equal(-3, await db.SortedSetScoreAsync(log, "#"));
        Assert.Equal(6, (long)((RedisResult[])(await RedisSlidingWindowRateLimiter.Script.EvaluateAsync(db, [log], [60_000_000, 12, 0]))!)[2]);
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

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task A_lone_caller_sends_each_decision_at_once_even_when_it_blocks_on_the_next(string kind)
    {
        // With nobody else waiting, every decision is a batch of one sent at once: nothing holds the caller's next
        // call back, so one that blocks on it (sync over async) right after being resumed still gets it.
        var limiter = Limiter(RedisServers.Get(kind), limit: 1_000_000, TimeSpan.FromMinutes(1));
        var (batches, decisions) = (limiter.BatchesSent, limiter.DecisionsSent);
        var run = Task.Run(async () =>
        {
            var admitted = 0;
            for (var i = 0; i < 100; i++)
            {
                if ((await limiter.TryAcquireAsync($"lone{i % 5}").ConfigureAwait(false)).Allowed) admitted++;
                if (limiter.TryAcquireAsync($"lone{(i + 1) % 5}").AsTask().GetAwaiter().GetResult().Allowed) admitted++;
            }
            return admitted;
        });
        var finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken));
        Assert.True(finished == run, "a lone caller blocking right after a decision never got its next one");
        Assert.Equal(200, await run);
        Assert.Equal(200, limiter.DecisionsSent - decisions);
        Assert.Equal(200, limiter.BatchesSent - batches);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Lone_sends_and_batches_mixed_admit_exactly_the_limit_and_send_every_decision_once(string kind)
    {
        // Callers that pause at random alternate between the path of a lone call (sent at once, a batch of one) and
        // the queue (batched behind the calls in flight): every decision is sent exactly once, and a window that
        // outlasts the test admits exactly the limit.
        var ct = TestContext.Current.CancellationToken;
        const int limit = 500;
        // Denials are not remembered here: every call must reach the batching under test.
        var limiter = Limiter(RedisServers.Get(kind), limit, TimeSpan.FromMinutes(1), rememberDenials: false);
        var decisions = limiter.DecisionsSent;
        var admitted = 0;
        var denied = 0;
        await Task.WhenAll(Enumerable.Range(0, 32).Select(c => Task.Run(async () =>
        {
            for (var i = 0; i < 40; i++)
            {
                if (Random.Shared.Next(4) == 0) await Task.Delay(Random.Shared.Next(3), ct);
                var d = await limiter.TryAcquireAsync("mixed", 1, ct);
                Assert.False(d.IsFallback);
                if (d.Allowed) Interlocked.Increment(ref admitted);
                else Interlocked.Increment(ref denied);
            }
        }, ct)));
        Assert.Equal(32 * 40, admitted + denied);
        Assert.Equal(limit, admitted);
        Assert.Equal(32 * 40, limiter.DecisionsSent - decisions);
        // Entries are scored with server time (> 0); the member of extra weight, if any, has a negative score.
        Assert.Equal(limit, await RedisServers.Get(kind).GetDatabase().SortedSetLengthAsync(RedisSlidingWindowRateLimiter.LogKey(_prefix, "mixed"), 0, double.PositiveInfinity, Exclude.Start));
    }

    [Fact]
    public async Task The_log_key_always_outlives_its_newest_entry_by_a_window()
    {
        // After every call the key has a TTL, and after every admission that TTL reaches at least one window
        // past the entry just added (so no entry still inside the window can vanish with its key).
        var ct = TestContext.Current.CancellationToken;
        var db = RedisServers.Standalone.GetDatabase();
        // Long enough that a stalled test machine cannot let the first entry leave before the fourth call is denied.
        var window = TimeSpan.FromSeconds(2);
        var limiter = Limiter(RedisServers.Standalone, 3, window);
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "ttl");
        // Checked on the server's clock (PEXPIRETIME against the decision's server time), not by timing.
        async Task CheckAsync(RateLimitDecision d)
        {
            var expiresAtMs = (long)await db.ExecuteAsync("PEXPIRETIME", log);
            Assert.NotEqual(-1, expiresAtMs); // -1: the key exists without a TTL
            if (expiresAtMs == -2)
            {
                // Gone already: only a stalled machine gets here, and an admitted entry must have left the window first.
                var now = (RedisResult[])(await db.ExecuteAsync("TIME"))!;
                var nowMicroseconds = (long)now[0] * 1_000_000 + (long)now[1];
                if (d.Allowed) Assert.True(nowMicroseconds >= d.ServerTimeMicroseconds + (long)window.TotalMicroseconds, "the log key vanished while its entry was in the window");
                return;
            }
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
            await Task.Delay(600, ct);
            await CheckAsync(await limiter.TryAcquireAsync("ttl", 1, ct));
        }
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Entries_are_named_as_the_limiter_expects_and_the_release_script_gives_them_back(string kind)
    {
        // Giving back relies on knowing each entry's name: one batch with a key several times (plain, weighted,
        // a look, a denial), named by the script, then found under the names the limiter computes, and released.
        var db = RedisServers.Get(kind).GetDatabase();
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "names");
        RedisKey[] keys = [log, log, log, log, log, log];
        int[] permits = [1, 3, 0, 7, 2, 1];
        var result = (RedisResult[])(await RedisSlidingWindowRateLimiter.Script.EvaluateAsync(db, keys, [60_000_000, 8, .. permits.Select(p => (RedisValue)p), "inst", 42]))!;
        // 1 and 3 are taken, the look sees 4 free, 7 is denied (both with retry-after and reset of a window: every
        // entry has the same time), 2 and 1 are taken; that second single permit is named by its position.
        Assert.Equal([7L, 4L, -2L, 4L, 0L, 60_000_000L, -1L, 4L, 60_000_000L, 60_000_000L, 2L, 1L], result.Skip(1).Select(r => (long)r));
        bool[] admitted = [true, true, true, false, true, true];
        var batch = keys.Zip(permits).ToList();
        var expected = Enumerable.Range(0, keys.Length).Where(i => admitted[i] && permits[i] > 0)
            .Select(i => RedisSlidingWindowRateLimiter.EntryName("inst", 42, i + 1, permits[i], RedisSlidingWindowRateLimiter.NamedByPosition(batch, admitted, i)))
            .ToArray();
        Assert.Equal(["inst-42", "inst-42*3", "inst-42*2", "inst-42.6"], expected);
        var entries = (await db.SortedSetRangeByScoreAsync(log, 0)).Select(e => e.ToString()).Order(StringComparer.Ordinal);
        Assert.Equal(expected.Order(StringComparer.Ordinal), entries);
        Assert.Equal(-3, await db.SortedSetScoreAsync(log, "#"));
        var given = (RedisResult[])(await SlidingWindowScript.Release.EvaluateAsync(db, [log, log, log, log, log], [.. expected, expected[0]]))!;
        Assert.Equal([1L, 3L, 2L, 1L, 0L], given.Select(r => (long)r));
        Assert.False(await db.KeyExistsAsync(log));
    }

    [Fact]
    public async Task Weighted_permits_are_one_entry_each_and_retry_after_is_exact()
    {
        var ct = TestContext.Current.CancellationToken;
        var window = TimeSpan.FromMinutes(1);
        var limiter = Limiter(RedisServers.Standalone, 10, window);
        var a = await limiter.TryAcquireAsync("w", 4, ct);
        Assert.True(a.Allowed);
        Assert.Equal(6, a.Remaining);
        var b = await limiter.TryAcquireAsync("w", 7, ct);
        Assert.False(b.Allowed);
        Assert.Equal(6, b.Remaining);
        // One permit must leave: the 4 of a do, when a leaves the window (computed on Redis's clock).
        Assert.Equal(TimeSpan.FromMicroseconds(a.ServerTimeMicroseconds + (long)window.TotalMicroseconds - b.ServerTimeMicroseconds), b.RetryAfter);
        var c = await limiter.TryAcquireAsync("w", 6, ct);
        Assert.True(c.Allowed);
        Assert.Equal(0, c.Remaining);
        Assert.True(c.Reset > TimeSpan.FromSeconds(50));
        // Five must leave: a's 4 are not enough, c's 6 are.
        var d = await limiter.TryAcquireAsync("w", 5, ct);
        Assert.False(d.Allowed);
        Assert.Equal(TimeSpan.FromMicroseconds(c.ServerTimeMicroseconds + (long)window.TotalMicroseconds - d.ServerTimeMicroseconds), d.RetryAfter);
        // Two entries (and "#" holding their extra weight, 3 + 5), not ten.
        var db = RedisServers.Standalone.GetDatabase();
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "w");
        Assert.Equal(3, await db.SortedSetLengthAsync(log));
        Assert.Equal(-8, await db.SortedSetScoreAsync(log, "#"));
        var tooMany = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await limiter.TryAcquireAsync("w", 11, ct));
        Assert.Equal("permits", tooMany.ParamName);
    }

    [Fact]
    public async Task Retry_after_past_the_walked_entries_is_never_early()
    {
        // RetryAfter walks the oldest 64 entries adding their weights; past them it names an entry that frees
        // enough for sure (every entry holds at least one permit). 70 single permits, one of 10, then 10 single:
        // to take 75, the entry of 10 (the 71st) must leave; the bound may name a later one, never an earlier one.
        var ct = TestContext.Current.CancellationToken;
        var window = TimeSpan.FromMinutes(1);
        var limiter = Limiter(RedisServers.Standalone, 90, window);
        var times = new List<long>();
        foreach (var weight in Enumerable.Repeat(1, 70).Append(10).Concat(Enumerable.Repeat(1, 10)))
        {
            var d = await limiter.TryAcquireAsync("walk", weight, ct);
            Assert.True(d.Allowed);
            times.Add(d.ServerTimeMicroseconds);
        }
        var denied = await limiter.TryAcquireAsync("walk", 75, ct);
        Assert.False(denied.Allowed);
        var exact = TimeSpan.FromMicroseconds(times[70] + (long)window.TotalMicroseconds - denied.ServerTimeMicroseconds);
        var latest = TimeSpan.FromMicroseconds(times[^1] + (long)window.TotalMicroseconds - denied.ServerTimeMicroseconds);
        Assert.InRange(denied.RetryAfter, exact, latest);
        // Within the walked entries the answer is exact: 3 + 1 + 1 + 4, and 6 must leave.
        var small = Limiter(RedisServers.Standalone, 9, window);
        var marks = new List<long>();
        foreach (var weight in new[] { 3, 1, 1, 4 }) marks.Add((await small.TryAcquireAsync("walk-small", weight, ct)).ServerTimeMicroseconds);
        var wait = await small.TryAcquireAsync("walk-small", 6, ct);
        Assert.Equal(TimeSpan.FromMicroseconds(marks[3] + (long)window.TotalMicroseconds - wait.ServerTimeMicroseconds), wait.RetryAfter);
    }

    [Fact]
    public async Task Weighted_entries_leave_the_window_with_their_weight()
    {
        var ct = TestContext.Current.CancellationToken;
        var limiter = Limiter(RedisServers.Standalone, 10, TimeSpan.FromMilliseconds(300));
        Assert.True((await limiter.TryAcquireAsync("leave", 6, ct)).Allowed);
        Assert.True((await limiter.TryAcquireAsync("leave", 1, ct)).Allowed);
        await Poll.UntilAsync(async () => (await limiter.TryAcquireAsync("leave", 0, ct)).Remaining == 10, "the weighted entry to leave the window", ct);
        var db = RedisServers.Standalone.GetDatabase();
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "leave");
        Assert.Null(await db.SortedSetScoreAsync(log, "#"));
        var all = await limiter.TryAcquireAsync("leave", 10, ct);
        Assert.True(all.Allowed);
        Assert.Equal(0, all.Remaining);
        Assert.Equal(-9, await db.SortedSetScoreAsync(log, "#"));
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
        using (var l2 = await rl.AcquireAsync(1, ct)) Assert.True(l2.IsAcquired);
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
        Assert.True((await rl.AcquireAsync(("ann", "/b"), 1, ct)).IsAcquired);
        Assert.False(rl.AttemptAcquire(("carl", "/a")).IsAcquired); // decided in AcquireAsync only
        Assert.True((await rl.AcquireAsync(("carl", "/a"), 1, ct)).IsAcquired);
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
        // A server of its own: on the shared one, a test running beside this one may load the script again between
        // the flush and the call.
        await using var own = await PausableRedis.StartAsync();
        var server = own.Admin.GetServers().Single();
        var limiter = Limiter(own.Client, 5, TimeSpan.FromSeconds(10));
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
    public async Task Cancelling_while_Redis_has_not_answered_stops_the_wait_and_gives_the_permit_back()
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
        var sentBefore = limiter.DecisionsSent;
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
        // The first call went at once (nothing was in flight); the second waited in the queue behind it, so
        // cancelling it there sent nothing. Redis takes the one sent once it runs again, and as nobody received
        // it, its permit is given back.
        await Poll.UntilAsync(() => limiter.PermitsGivenBack == 1, "the cancelled call's permit to be given back", ct);
        Assert.Equal(1, limiter.DecisionsSent - sentBefore);
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix, "paused");
        Assert.Equal(1, await admin.GetDatabase().SortedSetLengthAsync(log));
        Assert.Equal(4, (await limiter.TryAcquireAsync("paused", 0, ct)).Remaining);
    }

    [Theory]
    [InlineData(RedisFailureMode.FailClosed)]
    [InlineData(RedisFailureMode.Throw)]
    [InlineData(RedisFailureMode.FailOpen)]
    public async Task Decisions_that_timed_out_give_their_permits_back_unless_the_callers_went_ahead(RedisFailureMode mode)
    {
        // The client gives up after 1 s while Redis is paused; the script, already sent, still runs once Redis
        // resumes. Callers told "denied" (or given the exception) never use those permits: they are given back
        // (retried until Redis answers). Callers of FailOpen went ahead: their permits stay counted.
        var ct = TestContext.Current.CancellationToken;
        await using var paused = await PausableRedis.StartAsync(timeoutSeconds: 1);
        // The breaker stays shut: after these timeouts it would open and answer the look below itself
        // (its own behaviour is covered in CircuitBreakerTests).
        var limiter = new RedisSlidingWindowRateLimiter(paused.Client, new RedisSlidingWindowOptions
        {
            PermitLimit = 12, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix, OnRedisFailure = mode, CircuitBreaker = new() { Enabled = false },
        });
        Assert.Equal(12, (await limiter.TryAcquireAsync("timed-out", 0, ct)).Remaining); // the script is cached, as on any running server
        await paused.PauseAsync();
        // Past the first batches in flight, the calls share one batch, some weighted: 12 permits in all.
        var calls = new[] { 1, 2, 1, 2, 1, 2, 1, 2 }.Select(w => limiter.TryAcquireAsync("timed-out", w, ct).AsTask()).ToArray();
        foreach (var call in calls)
        {
            if (mode == RedisFailureMode.Throw)
            {
                await Assert.ThrowsAsync<RedisTimeoutException>(() => Poll.WithinAsync(call, "the timed-out call"));
                continue;
            }
            var d = await Poll.WithinAsync(call, "the timed-out call");
            Assert.Equal((true, mode == RedisFailureMode.FailOpen), (d.IsFallback, d.Allowed));
        }
        await paused.ResumeAsync();
        // A look goes after the timed-out script on the same connection: when it answers, that script has run.
        var after = await limiter.TryAcquireAsync("timed-out", 0, ct);
        Assert.False(after.IsFallback);
        if (mode == RedisFailureMode.FailOpen)
        {
            Assert.Equal(0, after.Remaining);
            Assert.Equal(0, limiter.PermitsGivenBack);
            return;
        }
        await Poll.UntilAsync(async () => (await limiter.TryAcquireAsync("timed-out", 0, ct)).Remaining == 12, "the timed-out decisions' permits to be given back", ct);
        Assert.True((await limiter.TryAcquireAsync("timed-out", 12, ct)).Allowed);
    }

    [Fact]
    public async Task A_zero_permit_wait_asks_Redis_again_only_when_a_permit_frees()
    {
        // The usual wait loop (AcquireAsync(1) denied, AcquireAsync(0), AcquireAsync(1)) must not hammer Redis:
        // the 0-permit call sleeps until the entry that frees a permit leaves the window (real clock here).
        var ct = TestContext.Current.CancellationToken;
        var limiter = Limiter(RedisServers.Standalone, 1, TimeSpan.FromSeconds(1));
        var adapter = limiter.ForKey("wait-zero");
        using (var one = await adapter.AcquireAsync(1, ct)) Assert.True(one.IsAcquired);
        var before = limiter.DecisionsSent;
        using var free = await Poll.WithinAsync(adapter.AcquireAsync(0, ct).AsTask(), "the 0-permit call to see the free permit");
        Assert.True(free.IsAcquired);
        // A look, then one more once the permit is due; a loaded machine may wake a moment early and look once or twice
        // more. Hammering would be hundreds.
        Assert.InRange(limiter.DecisionsSent - before, 1, 4);
    }

    [Fact]
    public async Task Keys_are_any_string_and_never_share_a_window()
    {
        var ct = TestContext.Current.CancellationToken;
        var limiter = Limiter(RedisServers.Standalone, 1, TimeSpan.FromMinutes(1));
        string[] keys = ["", " ", "a", "a}", "{a", "{a}", "a}:log", "}", "{", "a:log", "ä", "*", new string('x', 10_000)];
        foreach (var key in keys) Assert.True((await limiter.TryAcquireAsync(key, 1, ct)).Allowed, $"key '{key[..Math.Min(key.Length, 10)]}'");
        foreach (var key in keys) Assert.False((await limiter.TryAcquireAsync(key, 1, ct)).Allowed, $"key '{key[..Math.Min(key.Length, 10)]}'");
        using var empty = await limiter.ForKey("").AcquireAsync(1, ct);
        Assert.False(empty.IsAcquired);
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await limiter.TryAcquireAsync(null!, 1, ct));
        Assert.Throws<ArgumentNullException>(() => limiter.ForKey(null!));
    }

    [Fact]
    public async Task A_partitioned_limiter_forgets_keys_idle_for_a_window()
    {
        // Keys come from requests: their local state must not grow without bound. Keys idle for a window are dropped
        // at the next sweep (when the number of keys has doubled since the last one).
        var ct = TestContext.Current.CancellationToken;
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var limiter = new RedisSlidingWindowRateLimiter(RedisServers.Standalone, new RedisSlidingWindowOptions { PermitLimit = 5, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix, TimeProvider = time });
        var partitioned = (RedisPartitionedRateLimiter<int>)limiter.Partitioned<int>(i => "p" + i);
        await Task.WhenAll(Enumerable.Range(0, 1500).Select(async i => (await partitioned.AcquireAsync(i, 1, ct)).Dispose()));
        Assert.Equal(1500, partitioned.TrackedKeys);
        Assert.Equal(1, partitioned.GetStatistics(7)!.TotalSuccessfulLeases);
        time.Advance(TimeSpan.FromMinutes(2));
        await Task.WhenAll(Enumerable.Range(1500, 600).Select(async i => (await partitioned.AcquireAsync(i, 1, ct)).Dispose()));
        Assert.InRange(partitioned.TrackedKeys, 1, 600);
        Assert.Equal(0, partitioned.GetStatistics(7)!.TotalSuccessfulLeases);
        Assert.Equal(1, partitioned.GetStatistics(2099)!.TotalSuccessfulLeases);
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
