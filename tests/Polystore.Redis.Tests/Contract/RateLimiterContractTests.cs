using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Polystore.Redis.RateLimiting;

namespace Polystore.Redis.Tests.Contract;

/// <summary>
/// Scenarios of .NET's own rate-limiter tests (BaseRateLimiterTests, SlidingWindowRateLimiterTests,
/// PartitionedRateLimiterTests in dotnet/runtime), each run against Polystore's limiter and against the in-box
/// <see cref="SlidingWindowRateLimiter"/> (no queue, as Polystore's has none) with the same expected outcome.
/// Where a limiter that decides in Redis must differ, the test says where and why.
/// </summary>
public sealed class RateLimiterContractTests
{
    public static readonly TheoryData<string> Limiters = new() { "polystore", "in-box" };

    private static ILimiterSubject Subject(string kind) => kind == "in-box" ? new InBoxSubject() : new RedisSubject(RedisServers.Standalone);

    private static bool IsDisposed(RateLimiter limiter)
    {
        try
        {
            limiter.GetStatistics();
            return false;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }

    // ------------------------------------------------------------------ AttemptAcquire

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task AttemptAcquire_never_waits_on_the_network_and_admissions_stay_exact(string kind)
    {
        // ASP.NET Core's middleware calls AttemptAcquire on the request thread, then AcquireAsync when that lease
        // is not acquired. 64 request threads do so while Redis answers nothing (paused for a minute, client
        // timeout a minute): each must be back from AttemptAcquire long before that.
        const int limit = 16;
        const int callers = 64;
        await using var paused = kind == "polystore" ? await PausableRedis.StartAsync() : null;
        // The decisions must still be waiting when the threads are all back, however long a loaded machine takes.
        ILimiterSubject subject = paused is null ? new InBoxSubject() : new RedisSubject(paused.Client, operationTimeout: TimeSpan.FromMinutes(1));
        var limiter = subject.CreateLimiter(limit);
        if (paused is not null) await paused.PauseAsync();
        var returned = 0;
        var admittedAtOnce = 0;
        var decisions = new ConcurrentBag<Task<RateLimitLease>>();
        var errors = new ConcurrentBag<Exception>();
        var threads = Enumerable.Range(0, callers).Select(_ => new Thread(() =>
        {
            try
            {
                var lease = limiter.AttemptAcquire(1);
                if (lease.IsAcquired) Interlocked.Increment(ref admittedAtOnce);
                else decisions.Add(limiter.AcquireAsync(1, TestContext.Current.CancellationToken).AsTask());
            }
            catch (Exception e)
            {
                errors.Add(e);
            }
            Interlocked.Increment(ref returned);
        }) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        await Poll.UntilAsync(() => Volatile.Read(ref returned) == callers, "every request thread to return from AttemptAcquire", TestContext.Current.CancellationToken);
        Assert.Empty(errors);
        // Differs: the in-box limiter admits here; Polystore's cannot decide without Redis and admits nobody
        // here (the leases say so), so every caller moves on to AcquireAsync.
        Assert.Equal(subject.DecidesSynchronously ? limit : 0, admittedAtOnce);
        if (paused is not null)
        {
            Assert.DoesNotContain(decisions, d => d.IsCompleted);
            await paused.ResumeAsync();
        }
        var leases = await Poll.WithinAsync(Task.WhenAll(decisions), "the decisions of AcquireAsync", TimeSpan.FromSeconds(30));
        // Exact either way: the limit is reached and not passed, and nobody under it was turned away.
        Assert.Equal(limit, admittedAtOnce + leases.Count(l => l.IsAcquired));
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task AttemptAcquire_with_free_permits(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(2);
        using var attempt = limiter.AttemptAcquire(1);
        if (subject.DecidesSynchronously)
        {
            Assert.True(attempt.IsAcquired);
        }
        else
        {
            // Differs: only Redis decides, and AttemptAcquire never waits on the network. The lease is not acquired,
            // has no RetryAfter (nothing to wait for) and says why; it is not counted as a failed lease.
            Assert.False(attempt.IsAcquired);
            Assert.False(attempt.TryGetMetadata(MetadataName.RetryAfter, out _));
            Assert.True(attempt.TryGetMetadata(MetadataName.ReasonPhrase, out var why));
            Assert.Contains("AcquireAsync", (string?)why, StringComparison.Ordinal);
            Assert.Equal((2, 0, 0), Counts(limiter));
            using var decided = await limiter.AcquireAsync(1, ct);
            Assert.True(decided.IsAcquired);
        }
        using var second = await limiter.AcquireAsync(1, ct);
        Assert.True(second.IsAcquired);
        using var third = await limiter.AcquireAsync(1, ct);
        Assert.False(third.IsAcquired);
        Assert.Equal((0, 2, 1), Counts(limiter));
    }

    // ------------------------------------------------------------------ weights

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task A_million_permits_are_one_decision(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        const int limit = 1_000_000;
        var limiter = subject.CreateLimiter(limit);
        using (var all = await limiter.AcquireAsync(limit, ct)) Assert.True(all.IsAcquired);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.False(one.IsAcquired);
        Assert.Equal((0, 1, 1), Counts(limiter));
        if (subject is RedisSubject redis)
        {
            // In Redis: one entry carrying the weight (and the member holding the log's extra weight), whatever the weight.
            var db = redis.Redis.GetDatabase();
            Assert.Equal(2, await db.SortedSetLengthAsync(redis.LogKey(limiter)));
            var bytes = (long)await db.ExecuteAsync("MEMORY", "USAGE", redis.LogKey(limiter));
            Assert.True(bytes < 1024, $"the log of one weighted decision takes {bytes} bytes");
        }
        await subject.PassWindowAsync(limiter);
        using var again = await limiter.AcquireAsync(limit, ct);
        Assert.True(again.IsAcquired);
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task Int_MaxValue_permits_do_not_overflow(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(int.MaxValue);
        using (var all = await limiter.AcquireAsync(int.MaxValue, ct)) Assert.True(all.IsAcquired);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.False(one.IsAcquired);
        Assert.Equal((0, 1, 1), Counts(limiter));
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task More_permits_than_the_limit_or_fewer_than_zero_are_refused(string kind)
    {
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(5);
        Assert.Equal("permitCount", Assert.Throws<ArgumentOutOfRangeException>(() => limiter.AttemptAcquire(6)).ParamName);
        Assert.Equal("permitCount", (await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await limiter.AcquireAsync(6, TestContext.Current.CancellationToken))).ParamName);
        Assert.Equal("permitCount", Assert.Throws<ArgumentOutOfRangeException>(() => limiter.AttemptAcquire(-1)).ParamName);
        Assert.Equal("permitCount", (await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await limiter.AcquireAsync(-1, TestContext.Current.CancellationToken))).ParamName);
        Assert.Equal((5, 0, 0), Counts(limiter));
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task Weighted_acquires_add_up_exactly(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(10);
        foreach (var weight in new[] { 4, 3, 3 })
            using (var lease = await limiter.AcquireAsync(weight, ct)) Assert.True(lease.IsAcquired);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.False(one.IsAcquired);
        Assert.Equal((0, 3, 1), Counts(limiter));
        await subject.PassWindowAsync(limiter);
        using (var six = await limiter.AcquireAsync(6, ct)) Assert.True(six.IsAcquired);
        using (var five = await limiter.AcquireAsync(5, ct)) Assert.False(five.IsAcquired);
        using (var four = await limiter.AcquireAsync(4, ct)) Assert.True(four.IsAcquired);
    }

    // ------------------------------------------------------------------ cancellation

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task A_token_cancelled_before_the_call_throws_and_takes_nothing(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(2);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        var e = await Assert.ThrowsAsync<TaskCanceledException>(async () => await limiter.AcquireAsync(1, cancelled.Token));
        Assert.Equal(cancelled.Token, e.CancellationToken);
        Assert.Equal((2, 0, 0), Counts(limiter));
        using var both = await limiter.AcquireAsync(2, ct);
        Assert.True(both.IsAcquired);
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task A_call_cancelled_while_it_waits_for_its_decision_takes_no_permit(string kind)
    {
        // Differs in how a call comes to wait: the in-box limiter decides at once, so its call waits in a queue
        // (this scenario gives it one); Polystore's waits for Redis (paused here), with the call already sent.
        var ct = TestContext.Current.CancellationToken;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (kind == "in-box")
        {
            using var inBox = new SlidingWindowRateLimiter(new SlidingWindowRateLimiterOptions { PermitLimit = 2, QueueLimit = 1, Window = TimeSpan.FromTicks(1), SegmentsPerWindow = 1, AutoReplenishment = false });
            using (var taken = await inBox.AcquireAsync(2, ct)) Assert.True(taken.IsAcquired);
            var waiting = inBox.AcquireAsync(1, cts.Token);
            Assert.False(waiting.IsCompleted);
            await cts.CancelAsync();
            Assert.Equal(cts.Token, (await Assert.ThrowsAsync<TaskCanceledException>(() => waiting.AsTask())).CancellationToken);
            Assert.True(inBox.TryReplenish());
            using var all = await inBox.AcquireAsync(2, ct);
            Assert.True(all.IsAcquired);
            return;
        }
        await using var paused = await PausableRedis.StartAsync();
        var subject = new RedisSubject(paused.Client);
        var core = subject.Core(2);
        var limiter = subject.ForKey(core, subject.NewKey());
        await paused.PauseAsync();
        var onTheWire = limiter.AcquireAsync(1, cts.Token);
        Assert.False(onTheWire.IsCompleted);
        await cts.CancelAsync();
        Assert.Equal(cts.Token, (await Assert.ThrowsAsync<TaskCanceledException>(() => onTheWire.AsTask())).CancellationToken);
        await paused.ResumeAsync();
        // Redis takes the decision once it runs again (it was sent); nobody received it, so it is given back.
        await Poll.UntilAsync(() => core.PermitsGivenBack == 1, "the cancelled call's permit to be given back", ct);
        using var both = await limiter.AcquireAsync(2, ct);
        Assert.True(both.IsAcquired);
        Assert.Equal((0, 1, 0), Counts(limiter));
    }

    // ------------------------------------------------------------------ 0 permits

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task AcquireAsync_zero_with_a_free_permit_completes_and_takes_none(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(1);
        using (var look = await limiter.AcquireAsync(0, ct)) Assert.True(look.IsAcquired);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.True(one.IsAcquired);
        Assert.Equal((0, 2, 0), Counts(limiter));
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task AcquireAsync_zero_on_an_exhausted_window_waits_until_a_permit_is_free(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(1);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.True(one.IsAcquired);
        var waiting = limiter.AcquireAsync(0, ct);
        await subject.SettleAsync();
        Assert.False(waiting.IsCompleted);
        await subject.PassWindowAsync(limiter);
        using var free = await subject.CompleteAsync(waiting, "the 0-permit call once a permit is free");
        Assert.True(free.IsAcquired);
        // It took nothing: the permit is still there.
        using var taken = await limiter.AcquireAsync(1, ct);
        Assert.True(taken.IsAcquired);
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task A_waiting_zero_permit_call_can_be_cancelled(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(1);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.True(one.IsAcquired);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var waiting = limiter.AcquireAsync(0, cts.Token);
        await subject.SettleAsync();
        Assert.False(waiting.IsCompleted);
        await cts.CancelAsync();
        var e = await Assert.ThrowsAsync<TaskCanceledException>(() => Poll.WithinAsync(waiting.AsTask(), "the cancelled wait"));
        Assert.Equal(cts.Token, e.CancellationToken);
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task AcquireAsync_on_an_exhausted_window_fails_at_once(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(1);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.True(one.IsAcquired);
        using var denied = await limiter.AcquireAsync(1, ct);
        Assert.False(denied.IsAcquired);
        // Differs, in Polystore's favour: its denied lease says when to come back (ASP.NET Core turns it into a
        // Retry-After header); the in-box sliding window's says nothing.
        var hasRetryAfter = denied.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter);
        Assert.Equal(!subject.DecidesSynchronously, hasRetryAfter);
        if (hasRetryAfter) Assert.InRange(retryAfter, TimeSpan.FromTicks(1), RedisSubject.Window);
    }

    // ------------------------------------------------------------------ statistics, idleness, disposal

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task Statistics_count_every_lease(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(100);
        Assert.Equal((100, 0, 0), Counts(limiter));
        using (var sixty = await limiter.AcquireAsync(60, ct)) Assert.True(sixty.IsAcquired);
        Assert.Equal((40, 1, 0), Counts(limiter));
        using (var fifty = await limiter.AcquireAsync(50, ct)) Assert.False(fifty.IsAcquired);
        Assert.Equal((40, 1, 1), Counts(limiter));
        using (var look = await limiter.AcquireAsync(0, ct)) Assert.True(look.IsAcquired);
        Assert.Equal((40, 2, 1), Counts(limiter));
        await subject.PassWindowAsync(limiter);
        Assert.Equal((100, 2, 1), Counts(limiter));
        Assert.Equal(0, limiter.GetStatistics()!.CurrentQueuedCount);
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task Each_partition_has_its_own_statistics(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        using var limiter = subject.CreatePartitioned(2);
        for (var i = 0; i < 3; i++) (await limiter.AcquireAsync("ann", 1, ct)).Dispose();
        var ann = limiter.GetStatistics("ann")!;
        var bob = limiter.GetStatistics("bob")!;
        Assert.Equal((0, 2, 1), (ann.CurrentAvailablePermits, ann.TotalSuccessfulLeases, ann.TotalFailedLeases));
        Assert.Equal((2, 0, 0), (bob.CurrentAvailablePermits, bob.TotalSuccessfulLeases, bob.TotalFailedLeases));
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task An_empty_partition_key_is_a_partition_like_any_other(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        using var limiter = subject.CreatePartitioned(2);
        Assert.True((await limiter.AcquireAsync("", 2, ct)).IsAcquired);
        Assert.False((await limiter.AcquireAsync("", 1, ct)).IsAcquired);
        Assert.True((await limiter.AcquireAsync(" ", 1, ct)).IsAcquired);
        Assert.Equal((0, 1, 1), (limiter.GetStatistics("")!.CurrentAvailablePermits, limiter.GetStatistics("")!.TotalSuccessfulLeases, limiter.GetStatistics("")!.TotalFailedLeases));
        // A null key is no key: both refuse it.
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await limiter.AcquireAsync(null!, 1, ct));
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task IdleDuration_is_null_while_permits_are_out_or_a_call_waits(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(1);
        Assert.NotNull(limiter.IdleDuration);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.True(one.IsAcquired);
        Assert.Null(limiter.IdleDuration);
        var waiting = limiter.AcquireAsync(0, ct);
        await subject.SettleAsync();
        Assert.False(waiting.IsCompleted);
        Assert.Null(limiter.IdleDuration);
        await subject.PassWindowAsync(limiter);
        (await subject.CompleteAsync(waiting, "the 0-permit call")).Dispose();
        Assert.NotNull(limiter.IdleDuration);
    }

    [Theory]
    [MemberData(nameof(Limiters))]
    public async Task PartitionedRateLimiter_Create_drops_idle_partitions_and_keeps_those_in_use(string kind)
    {
        // PartitionedRateLimiter.Create disposes a partition whose IdleDuration passes 10 s (checked every 100 ms).
        // "busy" has its permit out and a call waiting for the next one; "idle" was only looked at. For the in-box
        // limiter the 10 s are real; Polystore's adapters measure idleness on a fake clock moved 11 s on.
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var core = (subject as RedisSubject)?.Core(1);
        var made = new ConcurrentDictionary<string, RateLimiter>();
        RateLimiter Make(string key) => subject is RedisSubject redis ? redis.ForKey(core!, redis.NewKey()) : InBoxSubject.CreateUnreplenished(1);
        var partitioned = PartitionedRateLimiter.Create<string, string>(resource => RateLimitPartition.Get(resource, key => made.GetOrAdd(key, Make)));
        using (var one = await partitioned.AcquireAsync("busy", 1, ct)) Assert.True(one.IsAcquired);
        var waiting = partitioned.AcquireAsync("busy", 0, ct);
        await subject.SettleAsync();
        Assert.False(waiting.IsCompleted);
        using (var look = await partitioned.AcquireAsync("idle", 0, ct)) Assert.True(look.IsAcquired);
        (subject as RedisSubject)?.Time.Advance(TimeSpan.FromSeconds(11));
        await Poll.UntilAsync(() => IsDisposed(made["idle"]), "PartitionedRateLimiter.Create to dispose the idle partition", ct, TimeSpan.FromSeconds(30));
        Assert.False(IsDisposed(made["busy"]), "the partition in use was disposed");
        Assert.False(waiting.IsCompleted, "the call waiting in the busy partition was ended");
        await partitioned.DisposeAsync();
        using var ended = await Poll.WithinAsync(waiting.AsTask(), "the waiting call once the limiter is disposed");
        Assert.False(ended.IsAcquired);
    }

    [Theory]
    [InlineData("polystore", false)]
    [InlineData("polystore", true)]
    [InlineData("in-box", false)]
    [InlineData("in-box", true)]
    public async Task Disposing_ends_waiting_calls_and_later_calls_throw(string kind, bool async)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreateLimiter(1);
        using (var one = await limiter.AcquireAsync(1, ct)) Assert.True(one.IsAcquired);
        var waiting = limiter.AcquireAsync(0, ct);
        await subject.SettleAsync();
        Assert.False(waiting.IsCompleted);
        if (async) await limiter.DisposeAsync();
        else limiter.Dispose();
        using (var ended = await Poll.WithinAsync(waiting.AsTask(), "the waiting call once the limiter is disposed")) Assert.False(ended.IsAcquired);
        Assert.Throws<ObjectDisposedException>(() => limiter.AttemptAcquire(1));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await limiter.AcquireAsync(1, ct));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await limiter.AcquireAsync(0, ct));
        Assert.Throws<ObjectDisposedException>(() => limiter.GetStatistics());
        limiter.Dispose();
        await limiter.DisposeAsync();
    }

    [Theory]
    [InlineData("polystore", false)]
    [InlineData("polystore", true)]
    [InlineData("in-box", false)]
    [InlineData("in-box", true)]
    public async Task Disposing_a_partitioned_limiter_ends_waiting_calls_and_later_calls_throw(string kind, bool async)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var subject = Subject(kind);
        var limiter = subject.CreatePartitioned(1);
        using (var one = await limiter.AcquireAsync("ann", 1, ct)) Assert.True(one.IsAcquired);
        var waiting = limiter.AcquireAsync("ann", 0, ct);
        await subject.SettleAsync();
        Assert.False(waiting.IsCompleted);
        if (async) await limiter.DisposeAsync();
        else limiter.Dispose();
        using (var ended = await Poll.WithinAsync(waiting.AsTask(), "the waiting call once the limiter is disposed")) Assert.False(ended.IsAcquired);
        Assert.Throws<ObjectDisposedException>(() => limiter.AttemptAcquire("ann", 1));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await limiter.AcquireAsync("bob", 1, ct));
        Assert.Throws<ObjectDisposedException>(() => limiter.GetStatistics("ann"));
    }

    private static (long Available, long Successful, long Failed) Counts(RateLimiter limiter)
    {
        var s = limiter.GetStatistics()!;
        return (s.CurrentAvailablePermits, s.TotalSuccessfulLeases, s.TotalFailedLeases);
    }
}
