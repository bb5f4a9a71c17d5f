using Polystore.Redis.Locking;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>What a handle says once its lease is lost, and fencing tokens at the ends of their range.</summary>
public sealed class LockEdgeTests
{
    private const long TwoTo53 = 1L << 53;
    private readonly string _prefix = TestServers.UniqueName("lockedge");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private RedisLockProvider Provider(TimeSpan? expiry = null) => new(RedisServers.Standalone, new RedisLockOptions
    {
        KeyPrefix = _prefix,
        Expiry = expiry ?? TimeSpan.FromSeconds(20),
        CircuitBreaker = RedisServers.PatientBreaker,
    });

    private RedisKey LockKey(string resource) => RedisKeys.Tagged(_prefix, resource, ":lock");

    // The handle counts its lease from before the acquire was sent, so Redis may keep the key a little longer than the
    // handle trusts it (here: much longer). Once the handle has said the lease is gone, it must not come back.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Once_the_handle_has_judged_its_lease_lost_it_stays_lost(bool watchingLostToken)
    {
        var locks = Provider(expiry: TimeSpan.FromSeconds(1));
        var held = await locks.AcquireAsync("outlived", TimeSpan.Zero, Ct);
        var lostCallbacks = 0;
        if (watchingLostToken) held.LostToken.Register(() => Interlocked.Increment(ref lostCallbacks));
        Assert.True(await RedisServers.Standalone.GetDatabase().KeyExpireAsync(LockKey("outlived"), TimeSpan.FromMinutes(1)));

        await Poll.UntilAsync(() => !held.IsHeld, "the handle's lease to run out", Ct);

        Assert.False(await held.ExtendAsync(Ct));
        Assert.False(held.IsHeld);
        Assert.False(await held.ExtendAsync(Ct));
        if (watchingLostToken)
        {
            Assert.True(held.LostToken.IsCancellationRequested);
            Assert.Equal(1, Volatile.Read(ref lostCallbacks));
        }
        // The key it still owns in Redis goes with the confirmed release.
        Assert.True(await held.ReleaseAsync(Ct));
        Assert.False(await RedisServers.Standalone.GetDatabase().KeyExistsAsync(LockKey("outlived")));
    }

    [Fact]
    public async Task Extensions_racing_a_stolen_lease_agree_once_one_sees_it_lost()
    {
        var locks = Provider();
        await using var held = await locks.AcquireAsync("raced", TimeSpan.Zero, Ct);
        var lostCallbacks = 0;
        held.LostToken.Register(() => Interlocked.Increment(ref lostCallbacks));
        using var stop = new CancellationTokenSource();
        var extenders = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested && await held.ExtendAsync(Ct)) { }
        }, Ct)).ToArray();

        await Task.Delay(50, Ct);
        await RedisServers.Standalone.GetDatabase().KeyDeleteAsync(LockKey("raced"));
        await Task.WhenAll(extenders).WaitAsync(TimeSpan.FromSeconds(30), Ct); // each stops at its first false
        // Another owner takes the key; nothing the old handle says or does makes it its own again.
        await using var thief = await Provider().AcquireAsync("raced", TimeSpan.Zero, Ct);
        var later = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () => (await held.ExtendAsync(Ct), held.IsHeld), Ct)));

        Assert.All(later, r => Assert.Equal((false, false), r));
        Assert.True(held.LostToken.IsCancellationRequested);
        Assert.Equal(1, Volatile.Read(ref lostCallbacks));
        Assert.True(thief.IsHeld);
        Assert.True(await thief.ExtendAsync(Ct));
    }

    [Fact]
    public async Task Fencing_tokens_stay_exact_past_two_to_the_53rd()
    {
        var locks = Provider();
        Assert.Equal(TwoTo53 - 1, await locks.RaiseFencingTokenAsync("big", TwoTo53 - 1, Ct));
        var tokens = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            var held = await locks.AcquireAsync("big", TimeSpan.FromSeconds(10), Ct);
            tokens.Add(held.FencingToken);
            Assert.True(await held.ReleaseAsync(Ct));
        }

        Assert.Equal([TwoTo53, TwoTo53 + 1, TwoTo53 + 2], tokens);
        // Raising compares exactly too: 2^53 + 5 is above 2^53 + 2, and 2^53 + 4 below what it was raised to.
        Assert.Equal(TwoTo53 + 5, await locks.RaiseFencingTokenAsync("big", TwoTo53 + 5, Ct));
        Assert.Equal(TwoTo53 + 5, await locks.RaiseFencingTokenAsync("big", TwoTo53 + 4, Ct));
        await using var next = await locks.AcquireAsync("big", TimeSpan.Zero, Ct);
        Assert.Equal(TwoTo53 + 6, next.FencingToken);
    }

    [Fact]
    public async Task At_the_counters_64_bit_limit_an_acquire_fails_by_name_and_leaves_the_lock_free()
    {
        var locks = Provider();
        Assert.Equal(long.MaxValue - 1, await locks.RaiseFencingTokenAsync("end", long.MaxValue - 1, Ct));
        var last = await locks.AcquireAsync("end", TimeSpan.Zero, Ct);
        Assert.Equal(long.MaxValue, last.FencingToken);
        Assert.True(await last.ReleaseAsync(Ct));

        var e = await Assert.ThrowsAsync<InvalidOperationException>(async () => await locks.AcquireAsync("end", TimeSpan.FromSeconds(5), Ct));

        Assert.Contains("fencing counter of 'end'", e.Message, StringComparison.Ordinal);
        Assert.False(await RedisServers.Standalone.GetDatabase().KeyExistsAsync(LockKey("end")));
        // Other resources are not affected.
        await using var other = await locks.AcquireAsync("elsewhere", TimeSpan.Zero, Ct);
        Assert.Equal(1, other.FencingToken);
    }
}
