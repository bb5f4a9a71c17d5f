using Microsoft.Extensions.DependencyInjection;
using Polystore.Redis.Locking;
using Polystore.Testing;

namespace Polystore.Redis.Tests;

/// <summary>The lock provider as a service: registered once, used through its interface.</summary>
public sealed class LockServicesTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly string _prefix = TestServers.UniqueName("locksvc");

    private ServiceProvider Provider(string kind = "standalone")
    {
        // The multiplexer registered first is the one Polystore's registration uses.
        var services = new ServiceCollection().AddSingleton(RedisServers.Get(kind));
        services.AddPolystore(TestServers.ConfigDirectory).AddRedisLocks(new RedisLockOptions { KeyPrefix = _prefix, Expiry = TimeSpan.FromSeconds(20) });
        return services.BuildServiceProvider();
    }

    [Fact]
    public async Task The_interface_and_the_provider_are_one_instance_and_a_held_lock_excludes_others()
    {
        await using var provider = Provider();
        var locks = provider.GetRequiredService<IRedisLockProvider>();
        Assert.Same(provider.GetRequiredService<RedisLockProvider>(), locks);

        await using (var held = await locks.AcquireAsync("job", TimeSpan.FromSeconds(5), Ct))
        {
            Assert.True(held.IsHeld);
            Assert.Null(await locks.TryAcquireAsync("job", cancellationToken: Ct));
            await Assert.ThrowsAsync<TimeoutException>(async () => await locks.AcquireAsync("job", TimeSpan.FromMilliseconds(50), Ct));
            Assert.True(await held.ExtendAsync(Ct));
            Assert.True(await held.ReleaseAsync(Ct));
        }
        var again = await locks.TryAcquireAsync("job", cancellationToken: Ct);
        Assert.NotNull(again);
        await again.DisposeAsync();
    }

    [Fact]
    public void Bad_options_throw_at_registration_naming_the_option()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ServiceCollection().AddPolystore(TestServers.ConfigDirectory).AddRedisLocks(new RedisLockOptions { Expiry = TimeSpan.Zero }));
        Assert.Equal(nameof(RedisLockOptions.Expiry), e.ParamName);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Two_providers_from_two_containers_exclude_each_other_with_increasing_fencing_tokens(string kind)
    {
        await using var first = Provider(kind);
        await using var second = Provider(kind);
        IRedisLockProvider[] providers = [first.GetRequiredService<IRedisLockProvider>(), second.GetRequiredService<IRedisLockProvider>()];
        var inside = 0;
        var overlaps = 0;
        var counter = 0;
        var tokens = new List<long>();
        await Task.WhenAll(Enumerable.Range(0, 32).Select(i => Task.Run(async () =>
        {
            await using var held = await providers[i % 2].AcquireAsync("counter", Timeout.InfiniteTimeSpan, Ct);
            if (Interlocked.Increment(ref inside) > 1) Interlocked.Increment(ref overlaps);
            var read = counter;
            await Task.Yield();
            counter = read + 1; // a lost update if two holders ever overlap
            lock (tokens) tokens.Add(held.FencingToken);
            Interlocked.Decrement(ref inside);
        }, Ct)));

        Assert.Equal(0, overlaps);
        Assert.Equal(32, counter);
        Assert.Equal(tokens.Order(), tokens);
        Assert.Equal(32, tokens.Distinct().Count());
    }
}
