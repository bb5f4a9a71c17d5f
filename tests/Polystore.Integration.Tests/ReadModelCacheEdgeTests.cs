using Polystore.Integration.Cqrs;
using Polystore.Integration.Projections;
using Polystore.Redis;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Integration.Tests;

/// <summary>The read-model cache's floor, its limits (TTL, versions, ids) and its disposal (each test reproduced a bug).</summary>
public sealed class ReadModelCacheEdgeTests(OutboxSchema schema) : IClassFixture<OutboxSchema>, IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly string _prefix = TestServers.UniqueName("rmc_edge") + ":";
    private IConnectionMultiplexer _redis = null!;

    private PostgresJsonbReadModelStore<string> _docs = null!;

    public async ValueTask InitializeAsync()
    {
        _redis = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        // Each test's documents live under its own ids; the read model is a real table.
        _docs = new PostgresJsonbReadModelStore<string>(schema.DataSource, schema.Store.Schema, "rmc_docs");
        await _docs.EnsureCreatedAsync(Ct);
    }

    public async ValueTask DisposeAsync() => await _redis.DisposeAsync();

    // A value cached at the floor's version gets a full TTL: the floor must outlive it, or once the floor died a slow
    // reader's older version could replace the newer one while the newer one was still cached.
    [Fact]
    public async Task The_floor_outlives_every_value_cached_at_or_above_it()
    {
        var store = _docs;
        var cache = new ReadModelCache<string>(_redis.GetDatabase(), store, _prefix, TimeSpan.FromSeconds(20));
        var db = _redis.GetDatabase();
        var (key, floor) = (cache.Key("a"), cache.Key("a") + ":floor");
        await store.UpsertIfNewerAsync("a", 4, "v4", Ct);
        await cache.InvalidateAsync("a", 4);
        // An invalidation at the same version stretches the floor too (a second projection pass, a replay).
        await db.KeyExpireAsync(floor, TimeSpan.FromSeconds(1));
        await cache.InvalidateAsync("a", 4);
        Assert.True((await db.KeyTimeToLiveAsync(floor))!.Value > TimeSpan.FromSeconds(20), "an invalidation at the floor's version left the floor short");

        await db.KeyExpireAsync(floor, TimeSpan.FromSeconds(1)); // the floor is about to end when a reader caches v4
        var (b, fromCache) = await cache.GetAsync("a", Ct);
        Assert.Equal((4L, false), (b!.Version, fromCache));

        var valueTtl = (await db.KeyTimeToLiveAsync(key))!.Value;
        var floorTtl = (await db.KeyTimeToLiveAsync(floor))!.Value;
        Assert.True(floorTtl >= valueTtl, $"floor TTL {floorTtl} < value TTL {valueTtl}: the value would outlive its floor");
        Assert.False(await cache.TrySetAsync(new ReadModel<string>("a", 3, "v3"), TimeSpan.FromSeconds(20)));
    }

    // A Ttl under a millisecond must not reach Redis as PX 0, which it refuses.
    [Fact]
    public async Task Sub_millisecond_ttl_does_not_crash_reads()
    {
        var store = _docs;
        await store.UpsertIfNewerAsync("c", 1, "v1", Ct);
        var cache = new ReadModelCache<string>(_redis.GetDatabase(), store, _prefix, TimeSpan.FromTicks(5_000)); // 0.5 ms
        var (model, _) = await cache.GetAsync("c", Ct);
        Assert.Equal(1, model!.Version);
    }

    [Fact]
    public async Task Sub_millisecond_ttl_does_not_crash_invalidation()
    {
        var cache = new ReadModelCache<string>(_redis.GetDatabase(), _docs, _prefix, TimeSpan.FromTicks(5_000));
        await cache.InvalidateAsync("c2", 1);
    }

    // Versions above 2^53 must compare exactly (Lua numbers are doubles).
    [Fact]
    public async Task Version_above_2_pow_53_is_not_refused_below_the_floor()
    {
        const long newer = (1L << 53) + 1, older = 1L << 53;
        var cache = new ReadModelCache<string>(_redis.GetDatabase(), _docs, _prefix);
        await cache.InvalidateAsync("d", newer);
        var cached = await cache.TrySetAsync(new ReadModel<string>("d", older, "old"), TimeSpan.FromMinutes(1));
        Assert.False(cached); // older than the floor: must be refused
    }

    [Fact]
    public async Task Large_version_raises_the_floor()
    {
        const long v1 = (1L << 53), v2 = (1L << 53) + 1, stale = (1L << 53);
        var cache = new ReadModelCache<string>(_redis.GetDatabase(), _docs, _prefix);
        Assert.True(await cache.TrySetAsync(new ReadModel<string>("e", v1, "v1"), TimeSpan.FromMinutes(1)));
        Assert.True(await cache.TrySetAsync(new ReadModel<string>("e", v2, "v2"), TimeSpan.FromMinutes(1)));
        var floor = await _redis.GetDatabase().StringGetAsync(cache.Key("e") + ":floor");
        Assert.Equal(v2.ToString(System.Globalization.CultureInfo.InvariantCulture), floor.ToString());
        Assert.False(await cache.TrySetAsync(new ReadModel<string>("e", stale, "stale"), TimeSpan.FromMinutes(1)));
    }

    // An empty id in a Redis Cluster: "p{}" and "p{}:floor" would hash differently (an empty hash tag counts as none).
    [Fact]
    public async Task An_empty_id_is_refused_as_it_could_not_share_a_cluster_slot_with_its_floor()
    {
        var cache = new ReadModelCache<string>(_redis.GetDatabase(), _docs, _prefix);
        await Assert.ThrowsAsync<ArgumentException>(() => cache.GetAsync("", Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => cache.InvalidateAsync("", 2));
    }

    [Fact]
    public async Task Dispose_during_first_probe_leaves_copies_off()
    {
        var store = _docs;
        await store.UpsertIfNewerAsync("f", 1, "v1", Ct);
        var cache = new ReadModelCache<string>(_redis.GetDatabase(), store, _prefix,
            new ReadModelCacheOptions { LocalTtl = TimeSpan.FromMinutes(5) });
        var read = cache.GetAsync("f", Ct); // starts the probe (SUBSCRIBE, then PUBLISH)
        await cache.DisposeAsync();
        await read;
        // The subscription the probe made must go (before the fix it stayed, and the copies came on).
        await Eventually.UntilAsync(async () => (long)(await _redis.GetDatabase().ExecuteAsync("PUBSUB", "NUMSUB", _prefix + "__invalidated"))[1] == 0,
            "no subscriber left on the invalidation channel", Ct);
        Assert.False(cache.LocalCopiesActive, "local copies came on after DisposeAsync");
    }

    // Ttl = TimeSpan.MaxValue ("keep until invalidated") would overflow the floor TTL (Ttl * 1.2).
    [Fact]
    public void A_ttl_past_3650_days_is_refused_at_construction()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReadModelCache<string>(_redis.GetDatabase(), _docs, _prefix, TimeSpan.MaxValue));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReadModelCache<string>(_redis.GetDatabase(), _docs, _prefix,
            new ReadModelCacheOptions { LocalTtl = TimeSpan.MaxValue }));
    }
}
