using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Redis.Caching;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>The tiered cache as a service: its registration, its construction without Redis, and what only Redis can do across instances.</summary>
public sealed class CacheServicesTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly string _prefix = TestServers.UniqueName("cachesvc");

    private ServiceProvider Provider(IConnectionMultiplexer redis, bool l1 = true, Action<IServiceCollection>? before = null)
    {
        var services = new ServiceCollection().AddSingleton(redis);
        before?.Invoke(services);
        services.AddPolystore(TestServers.ConfigDirectory).AddRedisCache(new RedisTieredCacheOptions { KeyPrefix = _prefix, UseL1 = l1 });
        return services.BuildServiceProvider();
    }

    [Fact]
    public async Task One_registration_serves_the_interface_IDistributedCache_and_HybridCache_over_one_cache()
    {
        // Registered earlier by the application or a framework: Polystore's cache replaces them.
        await using var provider = Provider(RedisServers.Standalone, before: s => s.AddDistributedMemoryCache().AddHybridCache());
        var tiered = provider.GetRequiredService<RedisTieredCache>();
        Assert.Same(tiered, provider.GetRequiredService<IRedisTieredCache>());
        Assert.IsType<RedisDistributedCache>(provider.GetRequiredService<IDistributedCache>());
        var hybrid = Assert.IsType<RedisHybridCache>(provider.GetRequiredService<HybridCache>());

        // One cache underneath: what one view writes, the others read.
        await tiered.SetAsync("shared", 41, cancellationToken: Ct);
        Assert.Equal(41, await hybrid.GetOrCreateAsync("shared", _ => ValueTask.FromResult(-1), cancellationToken: Ct));
        await hybrid.RemoveAsync("shared", Ct);
        Assert.False((await tiered.TryGetAsync<int>("shared", Ct)).Found);
    }

    [Fact]
    public void Bad_options_throw_at_registration_naming_the_option()
    {
        var services = new ServiceCollection();
        var polystore = services.AddPolystore(TestServers.ConfigDirectory);
        var registered = services.Count;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => polystore.AddRedisCache(new RedisTieredCacheOptions { DefaultTtl = TimeSpan.Zero }));
        Assert.Equal(nameof(RedisTieredCacheOptions.DefaultTtl), e.ParamName);
        Assert.Equal(registered, services.Count);
    }

    [Fact]
    public async Task Built_against_an_unreachable_Redis_the_cache_is_constructed_at_once_and_falls_back_to_the_factory()
    {
        using var unreachable = RedisServers.Unreachable();
        await using var provider = Provider(unreachable);
        // Resolving never waits on Redis (CreateAsync would throw here: it waits for the subscription).
        var cache = provider.GetRequiredService<IRedisTieredCache>();
        var calls = 0;

        Assert.Equal(7, await cache.GetOrSetAsync<int>("k", _ => { calls++; return Task.FromResult(7); }, cancellationToken: Ct));
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task Two_instances_built_by_injection_keep_their_L1_copies_in_step()
    {
        await using var first = Provider(RedisServers.Standalone);
        await using var second = Provider(RedisServers.Standalone);
        var a = first.GetRequiredService<HybridCache>();
        var b = second.GetRequiredService<HybridCache>();
        Assert.Equal("v1", await a.GetOrCreateAsync("doc", _ => ValueTask.FromResult("v1"), tags: ["docs"], cancellationToken: Ct));
        Assert.Equal("v1", await b.GetOrCreateAsync("doc", _ => ValueTask.FromResult("unused"), tags: ["docs"], cancellationToken: Ct)); // now in b's L1

        await a.SetAsync("doc", "v2", tags: ["docs"], cancellationToken: Ct);
        // An L1 copy carries the tags of the call that filled it, so readers name the entry's tags too.
        await Poll.UntilAsync(async () => await b.GetOrCreateAsync("doc", _ => ValueTask.FromResult("unused"), tags: ["docs"], cancellationToken: Ct) == "v2",
            "the second instance to drop its L1 copy after the first one's write", Ct);

        await a.RemoveByTagAsync("docs", Ct);
        await Poll.UntilAsync(async () => await b.GetOrCreateAsync("doc", _ => ValueTask.FromResult("reloaded"), tags: ["docs"], cancellationToken: Ct) == "reloaded",
            "the second instance to drop its L1 copy after the tag was removed", Ct);
    }

    [Fact]
    public async Task Layer_flags_it_cannot_honour_throw_NotSupportedException_naming_them()
    {
        await using var withL1 = Provider(RedisServers.Standalone, l1: true);
        await using var withoutL1 = Provider(RedisServers.Standalone, l1: false);
        var local = new HybridCacheEntryOptions { Flags = HybridCacheEntryFlags.DisableLocalCacheRead };
        var distributed = new HybridCacheEntryOptions { Flags = HybridCacheEntryFlags.DisableDistributedCacheWrite };

        var e = await Assert.ThrowsAsync<NotSupportedException>(async () =>
            await withL1.GetRequiredService<HybridCache>().GetOrCreateAsync("k", _ => ValueTask.FromResult(1), local, cancellationToken: Ct));
        Assert.Contains(nameof(HybridCacheEntryFlags.DisableLocalCacheRead), e.Message, StringComparison.Ordinal);
        e = await Assert.ThrowsAsync<NotSupportedException>(async () =>
            await withoutL1.GetRequiredService<HybridCache>().SetAsync("k", 1, distributed, cancellationToken: Ct));
        Assert.Contains(nameof(HybridCacheEntryFlags.DisableDistributedCacheWrite), e.Message, StringComparison.Ordinal);
        // Without L1 there is no local layer to skip: the flag already holds.
        Assert.Equal(1, await withoutL1.GetRequiredService<HybridCache>().GetOrCreateAsync("k", _ => ValueTask.FromResult(1), local, cancellationToken: Ct));
    }

    [Fact]
    public async Task A_sliding_entry_read_on_one_instance_stays_alive_for_another()
    {
        await using var first = Provider(RedisServers.Standalone);
        await using var second = Provider(RedisServers.Standalone);
        var writer = first.GetRequiredService<IDistributedCache>();
        var reader = second.GetRequiredService<IDistributedCache>();
        await writer.SetStringAsync("session", "state", new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20) }, Ct);

        Assert.Equal("state", await reader.GetStringAsync("session", Ct));
        var ttl = await RedisServers.Standalone.GetDatabase().KeyTimeToLiveAsync(first.GetRequiredService<RedisTieredCache>().RedisKeyOf("session"));
        // Exact: no jitter, no fail-safe extension, and the slide set it to the full window again.
        Assert.InRange(ttl!.Value, TimeSpan.FromMinutes(19), TimeSpan.FromMinutes(20));
    }
}
