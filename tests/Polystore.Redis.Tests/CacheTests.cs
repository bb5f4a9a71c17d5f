using System.Buffers;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Polystore.Redis.Caching;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

public sealed record User(int Id, string Name);

public sealed class CacheTests
{
    private readonly string _prefix = TestServers.UniqueName("cache");

    private Task<RedisTieredCache> Cache(IConnectionMultiplexer redis, bool l1 = false, TimeSpan? negative = null, bool failSafe = false, ICacheSerializer? serializer = null, double jitter = 0.1,
        TimeProvider? time = null, TimeSpan? l1Ttl = null) =>
        RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions
        {
            KeyPrefix = _prefix,
            UseL1 = l1,
            NegativeTtl = negative,
            FailSafe = failSafe,
            JitterFraction = jitter,
            Serializer = serializer ?? new SystemTextJsonCacheSerializer(),
            TimeProvider = time ?? TimeProvider.System,
            L1Ttl = l1Ttl ?? TimeSpan.FromSeconds(30),
            CircuitBreaker = RedisServers.PatientBreaker,
        }, TestContext.Current.CancellationToken);

    // A removal leaves a tombstone (kind byte 3) in place of the entry, for fills racing it to see.
    private static async Task AssertTombstoneAsync(RedisTieredCache cache, string key)
    {
        var raw = (byte[]?)await RedisServers.Standalone.GetDatabase().StringGetAsync(cache.RedisKeyOf(key));
        Assert.True(raw is [3, ..], $"{key} should hold a tombstone");
    }

    // A fake clock that starts at the real time, so entries written with it look normal in Redis.
    private static FakeTimeProvider Clock() => new(DateTimeOffset.UtcNow);

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
        var joined = 0;
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var callerTasks = Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            var pending = cache.GetOrSetAsync<User>("user:42", async _ =>
            {
                Interlocked.Increment(ref calls);
                await release.Task;
                return new User(42, "Ada");
            }, cancellationToken: ct);
            Interlocked.Increment(ref joined);
            return await pending;
        }, ct)).ToArray();
        start.SetResult();
        // The factory cannot finish before every caller has asked: they all miss the key at once.
        await Poll.UntilAsync(() => Volatile.Read(ref joined) == callers, "every caller to ask for the key", ct);
        release.SetResult();
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
        var joined = 0;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var callers = Enumerable.Range(0, 256).Select(i => Task.Run(async () =>
        {
            var k = i % 16;
            var pending = cache.GetOrSetAsync($"k{k}", async _ => { Interlocked.Increment(ref calls[k]); await release.Task; return $"v{k}"; }, cancellationToken: ct);
            Interlocked.Increment(ref joined);
            Assert.Equal($"v{k}", await pending);
        }, ct)).ToArray();
        await Poll.UntilAsync(() => Volatile.Read(ref joined) == 256, "every caller to ask for its key", ct);
        release.SetResult();
        await Task.WhenAll(callers);
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
        var time = Clock();
        var ttl = new CacheEntryOptions { Ttl = TimeSpan.FromMinutes(1) };
        Func<CancellationToken, Task<string?>> sourceDown = _ => throw new InvalidOperationException("source down");
        await using var safe = await Cache(RedisServers.Standalone, l1: l1, failSafe: true, jitter: 0, time: time);
        Assert.Equal("v1", await safe.GetOrSetAsync("fs", _ => Task.FromResult<string?>("v1"), ttl, ct));
        Assert.Equal("v1", await safe.GetOrSetAsync("fs", sourceDown, ttl, ct)); // fresh: the factory is not called
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal("v1", await safe.GetOrSetAsync("fs", sourceDown, ttl, ct)); // expired, factory fails: the last value
        Assert.Equal(2, safe.FactoryCalls);
        Assert.Equal("v2", await safe.GetOrSetAsync("fs", _ => Task.FromResult<string?>("v2"), ttl, ct));

        await using var strict = await Cache(RedisServers.Standalone, jitter: 0, time: time);
        Assert.Equal("v1", await strict.GetOrSetAsync("strict", _ => Task.FromResult<string?>("v1"), ttl, ct));
        time.Advance(TimeSpan.FromMinutes(2));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await strict.GetOrSetAsync("strict", sourceDown, ttl, ct));
    }

    [Fact]
    public async Task Fail_safe_serves_an_l1_copy_no_longer_than_fail_safe_max_age_past_its_ttl()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = Clock();
        var ttl = new CacheEntryOptions { Ttl = TimeSpan.FromMinutes(1) };
        var db = RedisServers.Standalone.GetDatabase();
        Func<CancellationToken, Task<string?>> sourceDown = _ => throw new InvalidOperationException("source down");
        await using var cache = await Cache(RedisServers.Standalone, l1: true, failSafe: true, jitter: 0, time: time); // FailSafeMaxAge: 1 h
        Assert.Equal("v1", await cache.GetOrSetAsync("l1fs", _ => Task.FromResult<string?>("v1"), ttl, ct));
        await db.KeyDeleteAsync(cache.RedisKeyOf("l1fs")); // only the L1 copy is left
        time.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal("v1", await cache.GetOrSetAsync("l1fs", sourceDown, ttl, ct)); // 29 min past its TTL: served

        Assert.Equal("v2", await cache.GetOrSetAsync("l1fs2", _ => Task.FromResult<string?>("v2"), ttl, ct));
        await db.KeyDeleteAsync(cache.RedisKeyOf("l1fs2"));
        time.Advance(TimeSpan.FromMinutes(62));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await cache.GetOrSetAsync("l1fs2", sourceDown, ttl, ct)); // 61 min past: not
    }

    [Fact]
    public async Task A_change_cancelled_after_it_reached_redis_still_reaches_every_l1_copy()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var redisB = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(TestServers.Redis));
        await using var a = await Cache(RedisServers.Standalone, l1: true);
        await using var b = await Cache(redisB, l1: true);
        foreach (var key in new[] { "wt", "rm" })
        {
            Assert.Equal("v1", await a.GetOrSetAsync(key, _ => Task.FromResult<string?>("v1"), cancellationToken: ct));
            Assert.Equal("v1", await b.GetOrSetAsync(key, _ => Task.FromResult<string?>("never"), cancellationToken: ct));
        }

        // The caller gives up while its source write runs; the write succeeds, so the cache must follow it.
        using var giveUp = new CancellationTokenSource();
        var result = await a.WriteThroughAsync("wt", _ => { giveUp.Cancel(); return Task.FromResult("v2"); }, cancellationToken: giveUp.Token);
        Assert.True(result.Cached);
        Assert.Equal("v2", (await a.TryGetAsync<string>("wt", ct)).Value);
        await Poll.UntilAsync(async () => (await b.TryGetAsync<string>("wt", ct)).Value == "v2", "B to see the write-through", ct);

        // A removal or a set whose token is already cancelled changes nothing anywhere.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => b.RemoveAsync("rm", new CancellationToken(canceled: true)));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => b.SetAsync("rm", "v3", cancellationToken: new CancellationToken(canceled: true)));
        Assert.Equal("v1", (await a.TryGetAsync<string>("rm", ct)).Value);
        Assert.Equal("v1", (await b.TryGetAsync<string>("rm", ct)).Value);
        Assert.True(await RedisServers.Standalone.GetDatabase().KeyExistsAsync(a.RedisKeyOf("rm")));
    }

    [Fact]
    public async Task The_hybrid_adapter_keeps_a_null_for_the_entry_expiration_not_negative_ttl()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = Clock();
        await using var tiered = await Cache(RedisServers.Standalone, negative: TimeSpan.FromMinutes(1), jitter: 0, time: time);
        var hybrid = new RedisHybridCache(tiered);
        var options = new Microsoft.Extensions.Caching.Hybrid.HybridCacheEntryOptions { Expiration = TimeSpan.FromMinutes(10) };
        var calls = 0;
        for (var i = 0; i < 3; i++)
        {
            Assert.Null(await hybrid.GetOrCreateAsync<string?>("nil", _ => { calls++; return ValueTask.FromResult<string?>(null); }, options, cancellationToken: ct));
            time.Advance(TimeSpan.FromMinutes(2)); // past NegativeTtl, within the entry's expiration
        }
        Assert.Equal(1, calls);
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
        await AssertTombstoneAsync(cache, "u1");

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

    [Theory]
    [InlineData("standalone")]
    [InlineData("cluster")]
    public async Task Keys_and_tags_from_callers_never_reach_the_cache_s_own_keys(string kind)
    {
        // Keys and tags come from callers. Whatever they are, an entry never overwrites a tag set (nor a tag set an
        // entry), and removal by prefix or pattern never deletes a tag set: entries and tag sets are separate key
        // spaces. The hostile keys mimic a tag set's key under the former layout, the current one, and raw keys.
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Get(kind);
        var db = redis.GetDatabase();
        await using var cache = await Cache(redis);
        var users = new CacheEntryOptions { Tags = ["users"] };
        await cache.SetAsync("u1", 1, users, ct);
        await cache.SetAsync("u2", 2, users, ct);
        string[] hostile = ["__tag:users", "t:users", ":t:users", "e:u1", ":e:u1", ":", "__invalidate", "*", "t:*", "[t]:users", cache.TagKeyOf("users"), cache.RedisKeyOf("u1")];
        for (var i = 0; i < hostile.Length; i++)
            await cache.SetAsync(hostile[i], 100 + i, new CacheEntryOptions { Tags = ["hostile", hostile[i]] }, ct);
        Assert.Equal(RedisType.Set, await db.KeyTypeAsync(cache.TagKeyOf("users")));
        Assert.Equal((true, 1), await cache.TryGetAsync<int>("u1", ct));
        for (var i = 0; i < hostile.Length; i++) Assert.Equal((true, 100 + i), await cache.TryGetAsync<int>(hostile[i], ct));

        Assert.Equal(2, await cache.RemoveByTagAsync("users", ct));
        Assert.Equal((false, 0), await cache.TryGetAsync<int>("u2", ct));
        for (var i = 0; i < hostile.Length; i++) Assert.Equal((true, 100 + i), await cache.TryGetAsync<int>(hostile[i], ct));

        // Everything by pattern and by prefix: entries only; the tag sets stay sets and still work.
        Assert.Equal(1, await cache.RemoveByPatternAsync("\\*", ct));
        Assert.Equal(hostile.Length - 1, await cache.RemoveByPrefixAsync("", ct));
        Assert.Equal(RedisType.Set, await db.KeyTypeAsync(cache.TagKeyOf("hostile")));
        Assert.Equal(0, await cache.RemoveByTagAsync("hostile", ct));
        Assert.Equal(0, await cache.RemoveByTagAsync("__tag:users", ct));
    }

    [Fact]
    public async Task An_L1_copy_is_served_for_L1Ttl_then_the_value_in_Redis()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = Clock();
        await using var reader = await Cache(RedisServers.Standalone, l1: true, time: time, l1Ttl: TimeSpan.FromSeconds(10));
        // A writer without L1 broadcasts nothing: only the L1 lifetime ends the reader's copy.
        await using var writer = await Cache(RedisServers.Standalone, time: time);
        Assert.Equal("v1", await reader.GetOrSetAsync("k", _ => Task.FromResult<string?>("v1"), cancellationToken: ct));
        await writer.SetAsync("k", "v2", cancellationToken: ct);
        Assert.Equal((true, "v2"), await writer.TryGetAsync<string>("k", ct));

        time.Advance(TimeSpan.FromSeconds(9));
        Assert.Equal((true, "v1"), await reader.TryGetAsync<string>("k", ct));
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal((true, "v2"), await reader.TryGetAsync<string>("k", ct));
        Assert.Equal("v2", await reader.GetOrSetAsync("k", _ => Task.FromResult<string?>("never"), cancellationToken: ct));
        Assert.Equal(1, reader.FactoryCalls);
    }

    [Fact]
    public async Task An_L1_copy_is_not_fresh_past_its_entry_ttl()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = Clock();
        await using var cache = await Cache(RedisServers.Standalone, l1: true, jitter: 0, time: time, l1Ttl: TimeSpan.FromMinutes(10));
        var ttl = new CacheEntryOptions { Ttl = TimeSpan.FromSeconds(5) };
        Assert.Equal("v1", await cache.GetOrSetAsync("short", _ => Task.FromResult<string?>("v1"), ttl, ct));
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal("v1", await cache.GetOrSetAsync("short", _ => Task.FromResult<string?>("v2"), ttl, ct));
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal((false, null), await cache.TryGetAsync<string>("short", ct));
        Assert.Equal("v2", await cache.GetOrSetAsync("short", _ => Task.FromResult<string?>("v2"), ttl, ct));
        Assert.Equal(2, cache.FactoryCalls);
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
        await Poll.UntilAsync(async () => (await b.TryGetAsync<string>("item", ct)).Value == "v2", "B to see A's write", ct);

        // A removes by key, by tag and by prefix: B's L1 copies go too.
        await b.GetOrSetAsync("item", _ => Task.FromResult<string?>("never"), cancellationToken: ct);
        await a.RemoveAsync("item", ct);
        await Poll.UntilAsync(async () => !(await b.TryGetAsync<string>("item", ct)).Found, "B to drop the key A removed", ct);

        await a.SetAsync("t1", "x", new CacheEntryOptions { Tags = ["grp"] }, ct);
        Assert.Equal("x", await b.GetOrSetAsync("t1", _ => Task.FromResult<string?>("never"), new CacheEntryOptions { Tags = ["grp"] }, ct));
        await db.KeyDeleteAsync(a.RedisKeyOf("t1"));
        await a.RemoveByTagAsync("grp", ct);
        await Poll.UntilAsync(async () => !(await b.TryGetAsync<string>("t1", ct)).Found, "B to drop the entry of the tag A removed", ct);

        await a.SetAsync("p:1", "y", cancellationToken: ct);
        Assert.Equal("y", await b.GetOrSetAsync("p:1", _ => Task.FromResult<string?>("never"), cancellationToken: ct));
        await a.RemoveByPrefixAsync("p:", ct);
        await Poll.UntilAsync(async () => !(await b.TryGetAsync<string>("p:1", ct)).Found, "B to drop the entry of the prefix A removed", ct);
        Assert.Equal(0, b.FactoryCalls);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_caller_that_cancels_stops_waiting_while_a_merged_caller_gets_the_value_and_it_is_cached(bool l1)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var cache = await Cache(RedisServers.Standalone, l1: l1);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var factoryToken = new CancellationToken(canceled: true);
        using var first = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var a = cache.GetOrSetAsync<string>("c", async token =>
        {
            factoryToken = token;
            await release.Task.WaitAsync(token); // a factory that honours its token
            return "v";
        }, cancellationToken: first.Token).AsTask();
        var b = cache.GetOrSetAsync<string>("c", _ => throw new InvalidOperationException("a second factory ran"), cancellationToken: ct).AsTask();

        await first.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Poll.WithinAsync(a, "the cancelled caller"));
        Assert.False(b.IsCompleted, $"the merged caller ended with the first caller's cancellation: {b.Status}");
        release.SetResult();
        Assert.Equal("v", await Poll.WithinAsync(b, "the merged caller"));
        Assert.False(factoryToken.CanBeCanceled, "the factory got a caller's token");
        Assert.Equal(1, cache.FactoryCalls);
        Assert.Equal((true, "v"), await cache.TryGetAsync<string>("c", ct));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_cancelled_factory_fails_every_merged_caller_and_caches_nothing(bool l1)
    {
        var ct = TestContext.Current.CancellationToken;
        // With negative caching on, a failed load must not be mistaken for "known missing" either.
        await using var cache = await Cache(RedisServers.Standalone, l1: l1, negative: TimeSpan.FromMinutes(1));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var query = new CancellationTokenSource();
        Func<CancellationToken, Task<string?>> cancelled = async _ =>
        {
            await release.Task;
            query.Token.ThrowIfCancellationRequested(); // e.g. the factory's database command was cancelled
            return "never";
        };
        var a = cache.GetOrSetAsync("x", cancelled, cancellationToken: ct).AsTask();
        var b = cache.GetOrSetAsync<string>("x", _ => throw new InvalidOperationException("a second factory ran"), cancellationToken: ct).AsTask();
        await query.CancelAsync();
        release.SetResult();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Poll.WithinAsync(a, "the caller"));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Poll.WithinAsync(b, "the merged caller"));
        Assert.Equal(1, cache.FactoryCalls);
        Assert.Equal((false, null), await cache.TryGetAsync<string>("x", ct));
        Assert.False(await RedisServers.Standalone.GetDatabase().KeyExistsAsync(cache.RedisKeyOf("x")));
        Assert.Equal("v", await cache.GetOrSetAsync("x", _ => Task.FromResult<string?>("v"), cancellationToken: ct));
        Assert.Equal(2, cache.FactoryCalls);
    }

    [Theory]
    [InlineData("remove", false, false)]
    [InlineData("remove", true, false)]
    [InlineData("remove", false, true)]
    [InlineData("write-through", false, false)]
    [InlineData("write-through", true, true)]
    [InlineData("set", false, true)]
    public async Task A_factory_that_ran_across_a_change_of_its_key_serves_its_result_but_does_not_cache_it(string change, bool l1, bool startStale)
    {
        // The classic cache-aside race: the factory reads the source, the source changes and the key is invalidated
        // (or written through), then the factory returns. Storing what it read would keep the old value until its TTL.
        var ct = TestContext.Current.CancellationToken;
        var clock = Clock();
        await using var cache = await Cache(RedisServers.Standalone, l1, failSafe: startStale, time: clock);
        if (startStale)
        {
            await cache.SetAsync("k", "v0", cancellationToken: ct);
            clock.Advance(TimeSpan.FromMinutes(6)); // past the default TTL: kept by fail-safe, no longer fresh
        }
        var source = "v1";
        var reading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fill = cache.GetOrSetAsync<string>("k", async _ =>
        {
            var read = source;
            reading.SetResult();
            await release.Task;
            return read;
        }, cancellationToken: ct).AsTask();
        await Poll.WithinAsync(reading.Task, "the factory to read the source");

        source = "v2";
        switch (change)
        {
            case "remove":
                Assert.Equal(startStale, await cache.RemoveAsync("k", ct));
                break;
            case "write-through":
                Assert.True((await cache.WriteThroughAsync("k", _ => Task.FromResult(source), cancellationToken: ct)).Cached);
                break;
            default:
                await cache.SetAsync("k", source, cancellationToken: ct);
                break;
        }
        release.SetResult();

        Assert.Equal("v1", await Poll.WithinAsync(fill, "the fill")); // its callers get what it read
        var expected = change == "remove" ? (false, null) : (true, "v2");
        Assert.Equal(expected, await cache.TryGetAsync<string>("k", ct));
        Assert.Equal("v2", await cache.GetOrSetAsync<string>("k", _ => Task.FromResult<string?>(source), cancellationToken: ct));
        Assert.Equal((true, "v2"), await cache.TryGetAsync<string>("k", ct));
    }

    [Fact]
    public async Task A_factory_that_found_its_key_absent_and_outlived_the_tombstones_stores_nothing()
    {
        // A removal of an absent key shows only through its tombstone; past TombstoneTtl it may be gone, so the
        // fill cannot prove that nothing changed and keeps its result out of the cache.
        var ct = TestContext.Current.CancellationToken;
        var clock = Clock();
        await using var cache = await RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions
        {
            KeyPrefix = _prefix, TimeProvider = clock, TombstoneTtl = TimeSpan.FromSeconds(10), CircuitBreaker = RedisServers.PatientBreaker,
        }, ct);

        Assert.Equal("slow", await cache.GetOrSetAsync<string>("slow", _ => { clock.Advance(TimeSpan.FromSeconds(11)); return Task.FromResult<string?>("slow"); }, cancellationToken: ct));
        Assert.Equal((false, null), await cache.TryGetAsync<string>("slow", ct));
        Assert.Equal("quick", await cache.GetOrSetAsync<string>("quick", _ => { clock.Advance(TimeSpan.FromSeconds(9)); return Task.FromResult<string?>("quick"); }, cancellationToken: ct));
        Assert.Equal((true, "quick"), await cache.TryGetAsync<string>("quick", ct));
    }

    [Theory]
    [InlineData("standalone", false)]
    [InlineData("standalone", true)]
    [InlineData("cluster", false)]
    public async Task Under_concurrent_writes_and_removals_the_cache_ends_on_the_last_written_version(string kind, bool l1)
    {
        // Two instances (as two processes) share the cache. Writers bump a key's version in the "source" and then
        // invalidate it (remove, or write through); readers fill it through factories that take a moment. However the
        // fills interleave with the changes, once the writers stop every cached copy, in Redis and in each L1, is the
        // last version. Changes of one key are serialized with their cache step, as write-through needs (two
        // write-throughs of a key can reach Redis in the other order than they reached the source).
        var ct = TestContext.Current.CancellationToken;
        var redis = RedisServers.Get(kind);
        await using var a = await Cache(redis, l1);
        await using var b = await Cache(redis, l1);
        RedisTieredCache[] caches = [a, b];
        const int keys = 6;
        var versions = new long[keys];
        var changing = Enumerable.Range(0, keys).Select(_ => new SemaphoreSlim(1)).ToArray();
        var writing = 4;
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            try
            {
                for (var i = 0; i < 150; i++)
                {
                    var k = Random.Shared.Next(keys);
                    var cache = caches[(w + i) % 2];
                    await changing[k].WaitAsync(ct);
                    try
                    {
                        if (i % 3 == 0)
                            await cache.WriteThroughAsync($"v:{k}", _ => Task.FromResult(Interlocked.Increment(ref versions[k])), cancellationToken: ct);
                        else
                        {
                            Interlocked.Increment(ref versions[k]);
                            await cache.RemoveAsync($"v:{k}", ct);
                        }
                    }
                    finally
                    {
                        changing[k].Release();
                    }
                    await Task.Delay(Random.Shared.Next(2), ct);
                }
            }
            finally
            {
                Interlocked.Decrement(ref writing);
            }
        }, ct)).ToArray();
        var readers = Enumerable.Range(0, 12).Select(r => Task.Run(async () =>
        {
            while (Volatile.Read(ref writing) > 0)
            {
                var k = Random.Shared.Next(keys);
                await caches[r % 2].GetOrSetAsync<long>($"v:{k}", async _ =>
                {
                    var read = Volatile.Read(ref versions[k]);
                    await Task.Delay(Random.Shared.Next(3), CancellationToken.None);
                    return read;
                }, cancellationToken: ct);
                await Task.Delay(1, ct); // an L1 hit completes synchronously: without a pause a reader never yields its thread
            }
        }, ct)).ToArray();
        await Poll.WithinAsync(Task.WhenAll(writers.Concat(readers)), "the writers and readers", TimeSpan.FromMinutes(2));

        for (var k = 0; k < keys; k++)
        {
            var (found, cached) = await a.TryGetAsync<long>($"v:{k}", ct);
            Assert.True(!found || cached == versions[k], $"key v:{k}: cached version {cached}, last written {versions[k]}");
            // Each L1 copy, once the other instance's broadcasts have arrived, agrees with Redis.
            foreach (var cache in caches)
            {
                var key = $"v:{k}";
                await Poll.UntilAsync(async () => await cache.GetOrSetAsync<long>(key, _ => Task.FromResult(Volatile.Read(ref versions[k])), cancellationToken: ct) == versions[k],
                    $"{key} to read {versions[k]}", ct);
            }
        }
    }

    [Fact]
    public async Task Bad_options_name_the_option()
    {
        var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => RedisTieredCache.CreateAsync(RedisServers.Standalone, new RedisTieredCacheOptions { JitterFraction = 2 }, TestContext.Current.CancellationToken));
        Assert.Equal("JitterFraction", e.ParamName);
    }
}
