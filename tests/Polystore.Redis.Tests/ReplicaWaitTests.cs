using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// <c>WaitForReplicas</c> when no replica can acknowledge (the standalone server has none): a lock token or an
/// admission that could not be made durable is never handed out, and what the script wrote is undone.
/// </summary>
public sealed class ReplicaWaitTests
{
    private readonly string _prefix = TestServers.UniqueName("replwait");

    [Fact]
    public async Task An_acquire_no_replica_acknowledged_throws_and_leaves_the_lock_free()
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Standalone;
        var durable = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = _prefix, WaitForReplicas = 1, ReplicaWaitTimeout = TimeSpan.FromMilliseconds(20) });
        var plain = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = _prefix });

        var e = await Assert.ThrowsAsync<RedisConnectionException>(async () => await durable.TryAcquireAsync("r", TimeSpan.Zero, ct));
        Assert.Contains("0 of 1 replicas acknowledged", e.Message, StringComparison.Ordinal);
        // Released behind the refused acquire: the next holder gets it at once, with a higher token than the one refused.
        await using var held = await plain.AcquireAsync("r", TimeSpan.FromSeconds(5), ct);
        Assert.Equal(2, held.FencingToken);
    }

    [Theory]
    [InlineData(RedisFailureMode.FailClosed, false, 0)]
    [InlineData(RedisFailureMode.FailOpen, true, 3)] // allowed after all: their entries count, as any fail-open admission's
    public async Task Admissions_no_replica_acknowledged_answer_by_the_failure_mode_and_refused_ones_are_given_back(RedisFailureMode mode, bool allowed, long left)
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Standalone;
        var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
        {
            PermitLimit = 5, Window = TimeSpan.FromMinutes(1), KeyPrefix = _prefix + mode, OnRedisFailure = mode, WaitForReplicas = 1, ReplicaWaitTimeout = TimeSpan.FromMilliseconds(20),
        });

        var decisions = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => limiter.TryAcquireAsync("k", 1, ct).AsTask()));

        Assert.All(decisions, d => Assert.Equal((true, allowed), (d.IsFallback, d.Allowed)));
        var log = RedisSlidingWindowRateLimiter.LogKey(_prefix + mode, "k");
        await Poll.UntilAsync(async () => await redis.GetDatabase().SortedSetLengthAsync(log) == left, "the refused admissions to be given back", ct);
    }

    [Fact]
    public void A_replica_wait_longer_than_the_operation_timeout_is_refused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RedisLockProvider(RedisServers.Standalone,
            new RedisLockOptions { WaitForReplicas = 1, ReplicaWaitTimeout = TimeSpan.FromSeconds(2) }));
        Assert.Contains("ReplicaWaitTimeout", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RedisSlidingWindowRateLimiter(RedisServers.Standalone,
            new RedisSlidingWindowOptions { WaitForReplicas = -1 }));
    }
}
