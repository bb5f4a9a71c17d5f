using System.Diagnostics;
using Polystore.Redis.Caching;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed class CacheAndLockTelemetryEdgeTests : IDisposable
{
    private readonly string _prefix = TestServers.UniqueName("teltele");
    private readonly ActivityCapture _spans = new(RedisTelemetry.ActivitySourceName);
    private readonly MetricCapture _metrics = new(RedisTelemetry.MeterName);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        _spans.Dispose();
        _metrics.Dispose();
    }

    private IReadOnlyList<Activity> Spans(string operation) => [.. _spans.WithTag("polystore.redis.prefix", _prefix).Where(a => a.DisplayName == $"{operation} {_prefix}")];

    public sealed record User(int Id, string Name);

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
}

public sealed class LockLeaseExpiryTelemetryTests : IDisposable
{
    private readonly string _prefix = TestServers.UniqueName("tellost");
    private readonly ActivityCapture _spans = new(RedisTelemetry.ActivitySourceName);
    private readonly MetricCapture _metrics = new(RedisTelemetry.MeterName);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        _spans.Dispose();
        _metrics.Dispose();
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
