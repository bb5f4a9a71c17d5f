using Polystore.Redis.Locking;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed class LockTests
{
    private readonly string _prefix = TestServers.UniqueName("lock");

    private RedisLockProvider Provider(IConnectionMultiplexer redis, TimeSpan? expiry = null, bool autoExtend = false, TimeSpan? interval = null, TimeSpan? maxHold = null) =>
        new(redis, new RedisLockOptions
        {
            KeyPrefix = _prefix,
            Expiry = expiry ?? TimeSpan.FromSeconds(20),
            AutoExtend = autoExtend,
            ExtendInterval = interval,
            MaxHoldTime = maxHold,
            CircuitBreaker = RedisServers.PatientBreaker,
        });

    private static async Task WaitForLossAsync(RedisLock held)
    {
        var lost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (held.LostToken.Register(() => lost.TrySetResult()))
            await Poll.WithinAsync(lost.Task, "the report that the lease was lost", TimeSpan.FromSeconds(30));
        Assert.False(held.IsHeld);
    }

    // One atomic look at the server: its clock (ms) and whether the key exists, at the same instant.
    private static readonly RedisScript ClockAndExists = new("""
        local t = redis.call('TIME')
        return { tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), redis.call('EXISTS', KEYS[1]) }
        """);

    private static async Task<(long NowMs, bool Exists)> ClockAndExistsAsync(IDatabaseAsync db, RedisKey key)
    {
        var r = (RedisResult[])(await ClockAndExists.EvaluateAsync(db, [key], []))!;
        return ((long)r[0], (long)r[1] == 1);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Sixty_four_tasks_are_mutually_excluded_with_strictly_increasing_fencing_tokens(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Get(kind));
        var inside = 0;
        var maxInside = 0;
        var order = new List<long>();
        var gate = new object();
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                await using var held = await locks.AcquireAsync("shared", TimeSpan.FromSeconds(60), ct);
                var now = Interlocked.Increment(ref inside);
                InterlockedMax(ref maxInside, now);
                lock (gate) order.Add(held.FencingToken);
                await Task.Yield();
                Interlocked.Decrement(ref inside);
            }
        }, ct)));
        Assert.Equal(1, maxInside);
        Assert.Equal(64 * 5, order.Count);
        for (var i = 1; i < order.Count; i++) Assert.True(order[i] > order[i - 1], $"fencing token {order[i]} after {order[i - 1]}");
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Many_resources_each_keep_their_own_exclusion_and_fence(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Get(kind));
        var inside = new int[16];
        var last = new long[16];
        var violations = 0;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(t => Task.Run(async () =>
        {
            for (var i = 0; i < 10; i++)
            {
                var r = (t * 7 + i) % 16;
                await using var held = await locks.AcquireAsync($"res{r}", TimeSpan.FromSeconds(60), ct);
                if (Interlocked.Increment(ref inside[r]) != 1) Interlocked.Increment(ref violations);
                if (held.FencingToken <= Volatile.Read(ref last[r])) Interlocked.Increment(ref violations);
                Volatile.Write(ref last[r], held.FencingToken);
                await Task.Yield();
                Interlocked.Decrement(ref inside[r]);
            }
        }, ct)));
        Assert.Equal(0, violations);
        Assert.Equal(64 * 10, last.Sum());
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task A_counter_incremented_non_atomically_under_the_lock_loses_no_update(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Get(kind));
        var counter = 0;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 10; i++)
            {
                await using var held = await locks.AcquireAsync("counter", TimeSpan.FromSeconds(60), ct);
                // Read, let others run, write back: two holders at once would lose an increment.
                var seen = Volatile.Read(ref counter);
                await Task.Yield();
                Volatile.Write(ref counter, seen + 1);
            }
        }, ct)));
        Assert.Equal(64 * 10, counter);
    }

    [Fact]
    public async Task Acquires_cancelled_at_any_moment_leave_no_lock_behind_and_never_overlap()
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Standalone, expiry: TimeSpan.FromMinutes(5));
        var counter = 0;
        var taken = 0;
        var cancelled = 0;
        await Task.WhenAll(Enumerable.Range(0, 32).Select(t => Task.Run(async () =>
        {
            for (var i = 0; i < 20; i++)
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                // Cancelled before, during or after the round trip that grants it (or while waiting behind another holder).
                var cancel = Task.Run(async () =>
                {
                    for (var y = Random.Shared.Next(8); y > 0; y--) await Task.Yield();
                    await cts.CancelAsync();
                }, ct);
                try
                {
                    await using var held = await locks.AcquireAsync("racy", Timeout.InfiniteTimeSpan, cts.Token);
                    Interlocked.Increment(ref taken);
                    var seen = Volatile.Read(ref counter);
                    await Task.Yield();
                    Volatile.Write(ref counter, seen + 1);
                }
                catch (OperationCanceledException) when (cts.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    Interlocked.Increment(ref cancelled);
                }
                await cancel;
            }
        }, ct)));
        Assert.Equal(32 * 20, taken + cancelled);
        Assert.Equal(taken, counter);
        // A grant nobody received would hold the lock for its whole five-minute lease.
        await using var after = await locks.TryAcquireAsync("racy", TimeSpan.Zero, ct);
        Assert.NotNull(after);
        Assert.True(after.FencingToken > taken, $"fencing token {after.FencingToken} after {taken} grants");
    }

    [Fact]
    public async Task The_fencing_counter_can_be_raised_never_lowered()
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Standalone);
        var first = await locks.AcquireAsync("raised", TimeSpan.Zero, ct);
        await first.DisposeAsync();
        Assert.Equal(100, await locks.RaiseFencingTokenAsync("raised", 100, ct));
        Assert.Equal(100, await locks.RaiseFencingTokenAsync("raised", 7, ct));
        var next = await locks.AcquireAsync("raised", TimeSpan.FromSeconds(10), ct);
        Assert.Equal(101, next.FencingToken);
        await next.DisposeAsync();
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await locks.RaiseFencingTokenAsync("raised", -1, ct));
    }

    [Fact]
    public async Task A_cancelled_release_leaves_the_lock_held_and_dispose_still_releases_it()
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Standalone);
        var held = await locks.AcquireAsync("cancelled-release", TimeSpan.Zero, ct);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await held.ReleaseAsync(new CancellationToken(canceled: true)));
        Assert.True(held.IsHeld);
        Assert.Null(await locks.TryAcquireAsync("cancelled-release", TimeSpan.Zero, ct));
        await held.DisposeAsync();
        // The release queued by dispose reaches Redis before this acquire (same queue), so the lock is free at once.
        var next = await locks.TryAcquireAsync("cancelled-release", TimeSpan.Zero, ct);
        Assert.NotNull(next);
        Assert.True(await next.ReleaseAsync(ct));
    }

    [Fact]
    public async Task An_expired_holder_can_neither_release_nor_extend()
    {
        var ct = TestContext.Current.CancellationToken;
        var shortLocks = Provider(RedisServers.Standalone, expiry: TimeSpan.FromMilliseconds(150));
        var old = await shortLocks.AcquireAsync("expiring", TimeSpan.Zero, ct);
        await WaitForLossAsync(old);
        Assert.False(old.IsHeld);
        var next = await Provider(RedisServers.Standalone).AcquireAsync("expiring", TimeSpan.FromSeconds(10), ct);
        Assert.True(next.FencingToken > old.FencingToken);
        Assert.False(await old.ExtendAsync(ct));
        Assert.False(await old.ReleaseAsync(ct));
        // The new holder is untouched by the old one's attempts.
        Assert.True(await next.ExtendAsync(ct));
        Assert.True(next.IsHeld);
        Assert.True(await next.ReleaseAsync(ct));
        await old.DisposeAsync();
    }

    [Fact]
    public async Task Wait_timeout_gives_up_while_another_holds_it()
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Standalone);
        await using var held = await locks.AcquireAsync("busy", TimeSpan.Zero, ct);
        Assert.Null(await locks.TryAcquireAsync("busy", TimeSpan.FromMilliseconds(80), ct));
        var e = await Assert.ThrowsAsync<TimeoutException>(async () => await locks.AcquireAsync("busy", TimeSpan.FromMilliseconds(30), ct));
        Assert.Contains("busy", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task A_released_lock_is_free_for_the_next_acquire_from_this_process_under_load(string kind)
    {
        // Dispose does not wait for the release, yet releases and acquires reach Redis in queue order
        // even with several batches in flight: an immediate re-acquire (no waiting) never finds it held.
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Get(kind));
        var taken = 0;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(t => Task.Run(async () =>
        {
            for (var i = 0; i < 20; i++)
            {
                var held = await locks.TryAcquireAsync($"own{t}", TimeSpan.Zero, ct);
                Assert.NotNull(held);
                await held.DisposeAsync();
                Interlocked.Increment(ref taken);
            }
        }, ct)));
        Assert.Equal(64 * 20, taken);
    }

    [Fact]
    public async Task Await_using_releases_and_a_waiter_gets_it()
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Standalone);
        long first;
        await using (var held = await locks.AcquireAsync("scoped", TimeSpan.Zero, ct)) first = held.FencingToken;
        await using var again = await locks.TryAcquireAsync("scoped", TimeSpan.Zero, ct);
        Assert.NotNull(again);
        Assert.Equal(first + 1, again.FencingToken);
    }

    [Fact]
    public async Task Auto_extension_keeps_the_lease_past_its_expiry_until_the_cap()
    {
        var ct = TestContext.Current.CancellationToken;
        var expiry = TimeSpan.FromSeconds(1);
        var locks = Provider(RedisServers.Standalone, expiry: expiry, autoExtend: true,
            interval: TimeSpan.FromMilliseconds(100), maxHold: TimeSpan.FromSeconds(3));
        var db = RedisServers.Standalone.GetDatabase();
        RedisKey lockKey = RedisKeys.Tagged(_prefix, "extended", ":lock");
        var held = await locks.AcquireAsync("extended", TimeSpan.Zero, ct);
        // Without extension the key is gone by (server time now) + expiry: it was set before this reading's instant.
        var (acquiredBy, _) = await ClockAndExistsAsync(db, lockKey);
        var lapseWithoutExtension = acquiredBy + (long)expiry.TotalMilliseconds;

        // Watch the server until its clock is half an expiry past that point: the key must be there at every look.
        var target = lapseWithoutExtension + (long)(expiry.TotalMilliseconds / 2);
        long serverNow;
        do
        {
            (serverNow, var exists) = await ClockAndExistsAsync(db, lockKey);
            Assert.True(exists, $"the lease lapsed at server time {serverNow} ms ({serverNow - acquiredBy} ms after the acquire) although auto-extension was on");
            if (serverNow < target) await Task.Delay(20, ct);
        }
        while (serverNow < target);
        Assert.True(held.IsHeld);
        Assert.False(held.LostToken.IsCancellationRequested);
        var other = Provider(RedisServers.Standalone);
        Assert.Null(await other.TryAcquireAsync("extended", TimeSpan.Zero, ct));

        // The cap stops extension, the lease runs out and the loss is reported.
        await WaitForLossAsync(held);
        await using var next = await other.AcquireAsync("extended", TimeSpan.FromSeconds(5), ct);
        Assert.True(next.FencingToken > held.FencingToken);
        Assert.False(await held.ReleaseAsync(ct));
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Many_auto_extended_locks_stay_held_past_their_expiry_and_none_is_extended_after_release(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Get(kind);
        // One provider's scheduler extends all of them; a lease of 3 s extended every 100 ms.
        var locks = Provider(redis, expiry: TimeSpan.FromSeconds(3), autoExtend: true, interval: TimeSpan.FromMilliseconds(100));
        const int count = 200;
        var held = await Task.WhenAll(Enumerable.Range(0, count).Select(i => Task.Run(async () => await locks.AcquireAsync($"many{i}", TimeSpan.Zero, ct), ct)));
        foreach (var h in held) Assert.False(h.LostToken.IsCancellationRequested); // armed: a lapse would cancel it

        // 35 extensions, 100 ms apart at least, take a lock past its 3 s expiry: without them every lease would have lapsed.
        await Poll.UntilAsync(() => held.All(h => h.AutoExtensions >= 35), "35 extensions of every lock", ct, TimeSpan.FromSeconds(120));
        Assert.All(held, h => Assert.True(h.IsHeld, $"{h.Resource} was lost while held"));
        var other = Provider(redis);
        for (var i = 0; i < count; i++) Assert.Null(await other.TryAcquireAsync($"many{i}", TimeSpan.Zero, ct));

        // Release half (awaited and fire-and-forget, at once) while the scheduler keeps extending the other half.
        var released = held.Where((_, i) => i % 2 == 0).ToArray();
        var kept = held.Where((_, i) => i % 2 == 1).ToArray();
        await Task.WhenAll(released.Select((h, j) => Task.Run(async () =>
        {
            if (j % 2 == 0) Assert.True(await h.ReleaseAsync(ct), $"{h.Resource} had lapsed before its release");
            else await h.DisposeAsync();
        }, ct)));
        // Once the kept locks have been extended twice more, any extension already on its way at a release has come back.
        await ExtendedAgainAsync(kept, 2, ct);
        var afterRelease = released.Select(h => h.AutoExtensions).ToArray();
        await ExtendedAgainAsync(kept, 5, ct);
        Assert.Equal(afterRelease, released.Select(h => h.AutoExtensions).ToArray());
        foreach (var h in released)
        {
            await using var next = await other.TryAcquireAsync(h.Resource, TimeSpan.FromSeconds(5), ct);
            Assert.NotNull(next);
        }

        // Every kept lease is still this holder's: its compare-and-delete succeeds.
        Assert.All(kept, h => Assert.True(h.IsHeld, $"{h.Resource} was lost while held"));
        await Task.WhenAll(kept.Select(h => Task.Run(async () => Assert.True(await h.ReleaseAsync(ct), $"{h.Resource} had lapsed before its release"), ct)));
        Assert.Equal(0, locks.Extender.Count);
    }

    private static Task ExtendedAgainAsync(RedisLock[] locks, int times, CancellationToken ct)
    {
        var from = locks.Select(h => h.AutoExtensions).ToArray();
        return Poll.UntilAsync(() => locks.Select((h, i) => h.AutoExtensions >= from[i] + times).All(x => x), $"{times} more extensions of every held lock", ct, TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task A_waiting_acquire_that_is_cancelled_throws_and_never_takes_the_lock()
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Standalone, expiry: TimeSpan.FromMinutes(1));
        var holder = await locks.AcquireAsync("contended", TimeSpan.Zero, ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var waiting = locks.TryAcquireAsync("contended", Timeout.InfiniteTimeSpan, cts.Token).AsTask();
        // Attempts from one provider are answered in queue order: once this one is refused, so was the waiter's first.
        Assert.Null(await locks.TryAcquireAsync("contended", TimeSpan.Zero, ct));
        Assert.False(waiting.IsCompleted);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Poll.WithinAsync(waiting, "the cancelled acquire"));
        // Free it: the cancelled waiter must not take it, so the next holder gets the very next fencing token.
        Assert.True(await holder.ReleaseAsync(ct));
        await using var next = await Provider(RedisServers.Standalone).AcquireAsync("contended", TimeSpan.FromSeconds(5), ct);
        Assert.Equal(holder.FencingToken + 1, next.FencingToken);
    }

    [Fact]
    public async Task An_acquire_with_a_cancelled_token_throws_without_taking_the_lock()
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Standalone);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await locks.TryAcquireAsync("free", TimeSpan.Zero, cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await locks.AcquireAsync("free", TimeSpan.FromSeconds(5), cancelled.Token));
        await using var first = await locks.AcquireAsync("free", TimeSpan.Zero, ct);
        Assert.Equal(1, first.FencingToken);
    }

    [Fact]
    public async Task A_lease_taken_away_surfaces_as_a_cancelled_lost_token()
    {
        var ct = TestContext.Current.CancellationToken;
        var locks = Provider(RedisServers.Standalone, expiry: TimeSpan.FromSeconds(5), autoExtend: true, interval: TimeSpan.FromMilliseconds(50));
        await using var held = await locks.AcquireAsync("stolen", TimeSpan.Zero, ct);
        Assert.False(held.LostToken.IsCancellationRequested);
        // Someone (an operator, a failover without persistence) deletes the key: the next extension is refused.
        await RedisServers.Standalone.GetDatabase().KeyDeleteAsync(RedisKeys.Tagged(_prefix, "stolen", ":lock"));
        await WaitForLossAsync(held);
        Assert.False(held.IsHeld);
    }

    [Fact]
    public void Bad_options_name_the_option()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RedisLockProvider(RedisServers.Standalone, new RedisLockOptions { Expiry = TimeSpan.FromSeconds(10), MaxHoldTime = TimeSpan.FromSeconds(1) }));
        Assert.Equal("MaxHoldTime", e.ParamName);
        var i = Assert.Throws<ArgumentOutOfRangeException>(() => new RedisLockProvider(RedisServers.Standalone, new RedisLockOptions { ExtendInterval = TimeSpan.FromMinutes(1) }));
        Assert.Equal("ExtendInterval", i.ParamName);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
