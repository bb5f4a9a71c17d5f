using System.Buffers;
using System.Text;
using Polystore.Redis.Caching;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed record User(int Id, string Name);

public sealed class CacheTests
{
    private readonly string _prefix = TestServers.UniqueName("cache");

    private Task<RedisTieredCache> Cache(IConnectionMultiplexer redis, bool l1 = false, TimeSpan? negative = null, bool failSafe = false, ICacheSerializer? serializer = null, double jitter = 0.1) =>
        RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions
        {
            KeyPrefix = _prefix,
            UseL1 = l1,
            NegativeTtl = negative,
            FailSafe = failSafe,
            JitterFraction = jitter,
            Serializer = serializer ?? new SystemTextJsonCacheSerializer(),
        }, TestContext.Current.CancellationToken);

    [Theory]
    [InlineData("standalone", false, 64)]
    [InlineData("standalone", true, 64)]
    [InlineData("standalone", false, 1000)]
    [InlineData("standalone", true, 1000)]
    [InlineData("cluster", false, 1000)]
    public async Task A_stampede_runs_the_factory_once(string kind, bool l1, int callers)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var cache = await Cache(RedisServers.Get(kind), l1);
        var calls = 0;
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var callerTasks = Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            return await cache.GetOrSetAsync<User>("user:42", async _ =>
            {
                Interlocked.Increment(ref calls);
                await Task.Delay(50, ct);
                return new User(42, "Ada");
            }, cancellationToken: ct);
        }, ct)).ToArray();
        start.SetResult();
        var results = await Task.WhenAll(callerTasks);
        Assert.Equal(1, calls);
        Assert.Equal(1, cache.FactoryCalls);
        Assert.Equal(callers, results.Length);
        Assert.All(results, r => Assert.Equal(new User(42, "Ada"), r));
    }

    [Fact]
    public async Task Stampedes_on_many_keys_run_each_factory_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var cache = await Cache(RedisServers.Standalone, l1: true);
        var calls = new int[16];
        await Task.WhenAll(Enumerable.Range(0, 256).Select(i => Task.Run(async () =>
        {
            var k = i % 16;
            var v = await cache.GetOrSetAsync($"k{k}", async _ => { Interlocked.Increment(ref calls[k]); await Task.Delay(20, ct); return $"v{k}"; }, cancellationToken: ct);
            Assert.Equal($"v{k}", v);
        }, ct)));
        Assert.All(calls, c => Assert.Equal(1, c));
    }

    [Fact]
    public async Task Miss_then_hit_and_the_ttl_carries_jitter()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var cache = await Cache(RedisServers.Standalone, jitter: 0.5);
        var ttl = TimeSpan.FromSeconds(100);
        var first = await cache.GetOrSetAsync("j", _ => Task.FromResult<string?>("one"), new CacheEntryOptions { Ttl = ttl }, ct);
        var second = await cache.GetOrSetAsync("j", _ => Task.FromResult<string?>("two"), new CacheEntryOptions { Ttl = ttl }, ct);
        Assert.Equal(("one", "one"), (first, second));
        Assert.Equal(1, cache.FactoryCalls);
        var pttl = await RedisServers.Standalone.GetDatabase().KeyTimeToLiveAsync(cache.RedisKeyOf("j"));
        Assert.InRange(pttl!.Value, TimeSpan.FromSeconds(95), TimeSpan.FromSeconds(150));
    }

    [Fact]
    public async Task Misses_are_cached_only_with_negative_caching()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var plain = await Cache(RedisServers.Standalone);
        for (var i = 0; i < 3; i++) Assert.Null(await plain.GetOrSetAsync("absent", _ => Task.FromResult<User?>(null), cancellationToken: ct));
        Assert.Equal(3, plain.FactoryCalls);

        await using var negative = await Cache(RedisServers.Standalone, negative: TimeSpan.FromSeconds(30));
        for (var i = 0; i < 3; i++) Assert.Null(await negative.GetOrSetAsync("absent2", _ => Task.FromResult<User?>(null), cancellationToken: ct));
        Assert.Equal(1, negative.FactoryCalls);
        var pttl = await RedisServers.Standalone.GetDatabase().KeyTimeToLiveAsync(negative.RedisKeyOf("absent2"));
        Assert.InRange(pttl!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(34));
        Assert.Equal((false, null), await negative.TryGetAsync<User>("absent2", ct));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Fail_safe_serves_the_last_value_when_the_factory_fails(bool l1)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var safe = await Cache(RedisServers.Standalone, l1: l1, failSafe: true, jitter: 0);
        var shortTtl = new CacheEntryOptions { Ttl = TimeSpan.FromMilliseconds(100) };
        Assert.Equal("v1", await safe.GetOrSetAsync("fs", _ => Task.FromResult<string?>("v1"), shortTtl, ct));
        await Task.Delay(200, ct);
        Assert.Equal("v1", await safe.GetOrSetAsync<string>("fs", _ => throw new InvalidOperationException("source down"), shortTtl, ct));
        Assert.Equal("v2", await safe.GetOrSetAsync("fs", _ => Task.FromResult<string?>("v2"), shortTtl, ct));

        await using var strict = await Cache(RedisServers.Standalone, jitter: 0);
        Assert.Equal("v1", await strict.GetOrSetAsync("strict", _ => Task.FromResult<string?>("v1"), shortTtl, ct));
        await Task.Delay(200, ct);
        await Assert.ThrowsAsync<InvalidOperationException>(async () =>
            await strict.GetOrSetAsync<string>("strict", _ => throw new InvalidOperationException("source down"), shortTtl, ct));
    }

    private sealed class Utf8Serializer : ICacheSerializer
    {
        public void Serialize<T>(T value, IBufferWriter<byte> destination)
        {
            if (value is string s && s == "poison") throw new InvalidOperationException("cannot serialize poison");
            destination.Write(Encoding.UTF8.GetBytes(value?.ToString() ?? ""));
        }

        public T? Deserialize<T>(ReadOnlySpan<byte> source) => (T)(object)Encoding.UTF8.GetString(source);
    }

    [Fact]
    public async Task A_pluggable_serializer_writes_the_bytes()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var cache = await Cache(RedisServers.Standalone, serializer: new Utf8Serializer());
        await cache.SetAsync("raw", "hello", cancellationToken: ct);
        byte[] stored = (await RedisServers.Standalone.GetDatabase().StringGetAsync(cache.RedisKeyOf("raw")))!;
        Assert.Equal("hello", Encoding.UTF8.GetString(stored.AsSpan(9)));
        Assert.Equal((true, "hello"), await cache.TryGetAsync<string>("raw", ct));
    }

    [Fact]
    public async Task Write_through_caches_after_the_source_write()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var cache = await Cache(RedisServers.Standalone, serializer: new Utf8Serializer());
        var source = new Dictionary<string, string>();
        var ok = await cache.WriteThroughAsync("u1", _ => { source["u1"] = "Ada"; return Task.FromResult("Ada"); }, cancellationToken: ct);
        Assert.True(ok.Cached);
        Assert.Null(ok.CacheError);
        Assert.Equal((true, "Ada"), await cache.TryGetAsync<string>("u1", ct));

        // Source write fails: exception propagates, the (now doubtful) entry is removed, nothing new is cached.
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            cache.WriteThroughAsync<string>("u1", _ => throw new InvalidOperationException("constraint violated"), cancellationToken: ct));
        Assert.Equal("constraint violated", e.Message);
        Assert.Equal((false, null), await cache.TryGetAsync<string>("u1", ct));
        Assert.False(await RedisServers.Standalone.GetDatabase().KeyExistsAsync(cache.RedisKeyOf("u1")));

        // Cache set fails after the source write: the source value stands and is returned, the old entry is gone.
        await cache.SetAsync("u2", "old", cancellationToken: ct);
        var failed = await cache.WriteThroughAsync("u2", _ => { source["u2"] = "poison"; return Task.FromResult("poison"); }, cancellationToken: ct);
        Assert.False(failed.Cached);
        Assert.Equal("poison", failed.Value);
        Assert.IsType<InvalidOperationException>(failed.CacheError);
        Assert.Equal("poison", source["u2"]);
        Assert.Equal((false, null), await cache.TryGetAsync<string>("u2", ct));
    }

    private static async Task<ConnectionMultiplexer> WithoutKeysCommandAsync(Polystore.Core.Configuration.RedisSettings settings)
    {
        // KEYS is removed from the command map: any use of it would throw, so passing proves SCAN was used.
        var options = RedisDriverSettings.Build(settings);
        options.CommandMap = CommandMap.Create(new HashSet<string> { "KEYS" }, available: false);
        return await ConnectionMultiplexer.ConnectAsync(options);
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Prefix_and_pattern_invalidation_scan_every_primary_without_keys(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var redis = await WithoutKeysCommandAsync(kind == "cluster" ? TestServers.RedisCluster! : TestServers.Redis);
        await using var cache = await Cache(redis);
        await Task.WhenAll(Enumerable.Range(0, 1200).Select(i => cache.SetAsync($"user:1:{i}", i, cancellationToken: ct)));
        await Task.WhenAll(Enumerable.Range(0, 30).Select(i => cache.SetAsync($"user:10:{i}", i, cancellationToken: ct)));
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => cache.SetAsync($"order:{i}:lines", i, cancellationToken: ct)));
        await cache.SetAsync("order:keep", 1, cancellationToken: ct);
        if (kind == "cluster")
        {
            var holders = redis.GetServers().Where(s => !s.IsReplica).Count(s => s.DatabaseSize() > 0);
            Assert.Equal(3, holders);
        }

        Assert.Equal(1200, await cache.RemoveByPrefixAsync("user:1:", ct));
        Assert.Equal((false, 0), await cache.TryGetAsync<int>("user:1:7", ct));
        Assert.Equal((true, 7), await cache.TryGetAsync<int>("user:10:7", ct));
        Assert.Equal(20, await cache.RemoveByPatternAsync("order:*:lines", ct));
        Assert.Equal((true, 1), await cache.TryGetAsync<int>("order:keep", ct));
        Assert.Equal(0, await cache.RemoveByPrefixAsync("user:1:", ct));
    }

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Tag_invalidation_removes_every_tagged_entry(string kind)
    {
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Get(kind);
        await using var cache = await Cache(redis);
        var tagged = new CacheEntryOptions { Tags = ["region:eu", "users"] };
        await Task.WhenAll(Enumerable.Range(0, 700).Select(i => cache.SetAsync($"u{i}", i, tagged, ct)));
        await cache.SetAsync("other", 1, new CacheEntryOptions { Tags = ["users"] }, ct);
        await cache.SetAsync("untagged", 2, cancellationToken: ct);
        var tagTtl = await redis.GetDatabase().KeyTimeToLiveAsync(cache.TagKeyOf("region:eu"));
        Assert.NotNull(tagTtl);

        Assert.Equal(700, await cache.RemoveByTagAsync("region:eu", ct));
        Assert.Equal((false, 0), await cache.TryGetAsync<int>("u3", ct));
        Assert.Equal((true, 1), await cache.TryGetAsync<int>("other", ct));
        Assert.False(await redis.GetDatabase().KeyExistsAsync(cache.TagKeyOf("region:eu")));
        Assert.Equal(1, await cache.RemoveByTagAsync("users", ct)); // the 700 were already gone
        Assert.Equal((true, 2), await cache.TryGetAsync<int>("untagged", ct));
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, CancellationToken ct)
    {
        for (var i = 0; i < 200 && !await condition(); i++) await Task.Delay(25, ct);
        Assert.True(await condition(), "the invalidation never arrived");
    }

    [Fact]
    public async Task L1_invalidations_reach_a_second_instance_over_pub_sub()
    {
        var ct = TestContext.Current.CancellationToken;
        // Two multiplexers stand for two processes.
        await using var redisB = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        await using var a = await Cache(RedisServers.Standalone, l1: true);
        await using var b = await Cache(redisB, l1: true);
        var db = RedisServers.Standalone.GetDatabase();

        Assert.Equal("v1", await a.GetOrSetAsync("item", _ => Task.FromResult<string?>("v1"), cancellationToken: ct));
        Assert.Equal("v1", await b.GetOrSetAsync("item", _ => Task.FromResult<string?>("never"), cancellationToken: ct));
        // B serves from L1: even with the Redis copy gone, it still answers without its factory.
        await db.KeyDeleteAsync(a.RedisKeyOf("item"));
        Assert.Equal("v1", await b.GetOrSetAsync("item", _ => Task.FromResult<string?>("never"), cancellationToken: ct));
        Assert.Equal(0, b.FactoryCalls);

        // A writes: B drops its L1 copy and reads the new value.
        await a.SetAsync("item", "v2", cancellationToken: ct);
        await EventuallyAsync(async () => (await b.TryGetAsync<string>("item", ct)).Value == "v2", ct);

        // A removes by key, by tag and by prefix: B's L1 copies go too.
        await b.GetOrSetAsync("item", _ => Task.FromResult<string?>("never"), cancellationToken: ct);
        await a.RemoveAsync("item", ct);
        await EventuallyAsync(async () => !(await b.TryGetAsync<string>("item", ct)).Found, ct);

        await a.SetAsync("t1", "x", new CacheEntryOptions { Tags = ["grp"] }, ct);
        Assert.Equal("x", await b.GetOrSetAsync("t1", _ => Task.FromResult<string?>("never"), new CacheEntryOptions { Tags = ["grp"] }, ct));
        await db.KeyDeleteAsync(a.RedisKeyOf("t1"));
        await a.RemoveByTagAsync("grp", ct);
        await EventuallyAsync(async () => !(await b.TryGetAsync<string>("t1", ct)).Found, ct);

        await a.SetAsync("p:1", "y", cancellationToken: ct);
        Assert.Equal("y", await b.GetOrSetAsync("p:1", _ => Task.FromResult<string?>("never"), cancellationToken: ct));
        await a.RemoveByPrefixAsync("p:", ct);
        await EventuallyAsync(async () => !(await b.TryGetAsync<string>("p:1", ct)).Found, ct);
        Assert.Equal(0, b.FactoryCalls);
    }

    [Fact]
    public async Task Bad_options_name_the_option()
    {
        var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions { JitterFraction = 2 }, TestContext.Current.CancellationToken));
        Assert.Equal("JitterFraction", e.ParamName);
    }
}
