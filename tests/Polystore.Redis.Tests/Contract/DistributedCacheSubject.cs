using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Polystore.Redis.Caching;
using Polystore.Testing;

namespace Polystore.Redis.Tests.Contract;

/// <summary>
/// One <see cref="IDistributedCache"/> the contract scenarios run against: the in-box <see cref="MemoryDistributedCache"/>
/// or Polystore's <see cref="RedisDistributedCache"/> (standalone with and without L1, cluster), all on one fake clock.
/// The Polystore caches keep their default jitter and run with fail-safe on: expirations must be exact anyway.
/// </summary>
internal sealed class DistributedCacheSubject : IAsyncDisposable
{
    public static readonly TheoryData<string> Kinds = ["in-box", "polystore", "polystore-l1", "polystore-cluster"];

    private readonly RedisTieredCache? _tiered;

    private DistributedCacheSubject(IDistributedCache cache, FakeTimeProvider time, RedisTieredCache? tiered)
    {
        Cache = cache;
        Time = time;
        _tiered = tiered;
    }

    public IDistributedCache Cache { get; }

    public FakeTimeProvider Time { get; }

    public static DistributedCacheSubject Create(string kind)
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        if (kind == "in-box")
            return new(new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions { Clock = new FakeSystemClock(time) })), time, null);
        var tiered = new RedisTieredCache(RedisServers.Get(kind == "polystore-cluster" ? "cluster" : "standalone"), new RedisTieredCacheOptions
        {
            KeyPrefix = TestServers.UniqueName("dcache"),
            UseL1 = kind == "polystore-l1",
            FailSafe = true,
            TimeProvider = time,
            CircuitBreaker = RedisServers.PatientBreaker,
        });
        return new(new RedisDistributedCache(tiered), time, tiered);
    }

    public async ValueTask DisposeAsync()
    {
        if (_tiered is not null) await _tiered.DisposeAsync();
    }
}
