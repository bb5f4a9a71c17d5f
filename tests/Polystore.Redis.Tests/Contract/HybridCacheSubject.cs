using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Polystore.Redis.Caching;
using Polystore.Testing;

namespace Polystore.Redis.Tests.Contract;

/// <summary>
/// One <see cref="HybridCache"/> the contract scenarios run against, on one fake clock: the in-box default from
/// <c>AddHybridCache()</c> alone (memory only) or over Polystore's <see cref="RedisDistributedCache"/>, and
/// Polystore's <see cref="RedisHybridCache"/> with and without L1.
/// </summary>
internal sealed class HybridCacheSubject : IAsyncDisposable
{
    public static readonly TheoryData<string> Kinds = ["in-box", "in-box-over-polystore", "polystore", "polystore-l1"];

    private readonly ServiceProvider _provider;

    private HybridCacheSubject(ServiceProvider provider, FakeTimeProvider time)
    {
        _provider = provider;
        Time = time;
        Cache = provider.GetRequiredService<HybridCache>();
    }

    public HybridCache Cache { get; }

    public FakeTimeProvider Time { get; }

    public static HybridCacheSubject Create(string kind)
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var services = new ServiceCollection().AddSingleton<TimeProvider>(time);
        services.AddMemoryCache(o => o.Clock = new FakeSystemClock(time));
        var options = new RedisTieredCacheOptions { KeyPrefix = TestServers.UniqueName("hybrid"), UseL1 = kind == "polystore-l1", TimeProvider = time, CircuitBreaker = RedisServers.PatientBreaker };
        services.AddSingleton(RedisServers.Standalone);
        switch (kind)
        {
            case "in-box":
                services.AddHybridCache();
                break;
            case "in-box-over-polystore":
                services.AddSingleton(sp => new RedisTieredCache(RedisServers.Standalone, options));
                services.AddSingleton<IDistributedCache>(sp => new RedisDistributedCache(sp.GetRequiredService<RedisTieredCache>()));
                services.AddHybridCache();
                break;
            default:
                services.AddPolystore(TestServers.ConfigDirectory).AddRedisCache(options);
                break;
        }
        return new(services.BuildServiceProvider(), time);
    }

    public ValueTask DisposeAsync() => _provider.DisposeAsync();
}
