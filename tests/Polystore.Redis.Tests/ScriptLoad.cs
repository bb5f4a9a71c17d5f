using System.Collections.Concurrent;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// The script traffic of the cluster failover tests: batched rate-limit decisions (a roomy limiter that always admits
/// and a tight one that is soon at its limit) and lock acquire/release loops, on keys the test chooses, with what each
/// caller was told kept for the invariants.
/// </summary>
internal sealed class ScriptLoad
{
    public const int TightLimit = 25;
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(10); // nothing leaves the window during a test

    private readonly IConnectionMultiplexer _redis;
    private readonly string[] _roomyKeys;
    private readonly string[] _tightKeys;
    private readonly string[] _resources;
    private readonly ConcurrentDictionary<string, long> _admitted = new();
    private readonly int[] _holders;
    private readonly long[] _lastToken;
    private readonly Lock _tokens = new();
    private long _twoHolders;
    private long _tokenNotIncreasing;
    private long _locksTaken;

    public ScriptLoad(IConnectionMultiplexer redis, string prefix, string[] roomyKeys, string[] tightKeys, string[] resources)
    {
        _redis = redis;
        _roomyKeys = roomyKeys;
        _tightKeys = tightKeys;
        _resources = resources;
        _holders = new int[resources.Length];
        _lastToken = new long[resources.Length];
        Roomy = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
        {
            PermitLimit = 1_000_000, Window = Window, KeyPrefix = prefix + ":roomy", OnRedisFailure = RedisFailureMode.Throw,
        });
        Tight = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
        {
            PermitLimit = TightLimit, Window = Window, KeyPrefix = prefix + ":tight", OnRedisFailure = RedisFailureMode.Throw,
        });
        Locks = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = prefix + ":lock", Expiry = TimeSpan.FromSeconds(5) });
    }

    public RedisSlidingWindowRateLimiter Roomy { get; }

    public RedisSlidingWindowRateLimiter Tight { get; }

    public RedisLockProvider Locks { get; }

    public long LocksTaken => Interlocked.Read(ref _locksTaken);

    /// <summary>Every Redis key the load writes, for choosing them in given slots.</summary>
    public static IEnumerable<RedisKey> KeysOf(string prefix, string name) =>
    [
        RedisSlidingWindowRateLimiter.LogKey(prefix + ":roomy", name),
        RedisSlidingWindowRateLimiter.LogKey(prefix + ":tight", name),
        RedisKeys.Tagged(prefix + ":lock", name, ":lock"),
        RedisKeys.Tagged(prefix + ":lock", name, ":fence"),
    ];

    /// <summary>The slot every key of <paramref name="name"/> hashes to (they share one hash tag per component).</summary>
    public static int SlotOf(IConnectionMultiplexer redis, string prefix, string name, string component) =>
        redis.HashSlot(component == "lock" ? RedisKeys.Tagged(prefix + ":lock", name, ":lock") : RedisSlidingWindowRateLimiter.LogKey($"{prefix}:{component}", name));

    /// <summary>One decision per key and one acquire/release per resource, so every key exists before the fault.</summary>
    public async Task PrimeAsync(CancellationToken ct)
    {
        foreach (var k in _roomyKeys) Count(k, await Roomy.TryAcquireAsync(k, 1, ct));
        foreach (var k in _tightKeys) Count("t:" + k, await Tight.TryAcquireAsync(k, 1, ct));
        for (var r = 0; r < _resources.Length; r++) await LockOnceAsync(r, ct);
    }

    /// <summary>Starts <paramref name="limiterWorkers"/> decision loops and two lock loops per resource.</summary>
    public void Start(ChaosTraffic traffic, int limiterWorkers)
    {
        traffic.Start(limiterWorkers, async (w, ct) =>
        {
            // Most decisions on the roomy keys (they keep admitting through the fault), some on the tight ones.
            if (w % 4 == 3)
            {
                var k = _tightKeys[Random.Shared.Next(_tightKeys.Length)];
                Count("t:" + k, await Tight.TryAcquireAsync(k, 1, ct));
            }
            else
            {
                var k = _roomyKeys[Random.Shared.Next(_roomyKeys.Length)];
                Count(k, await Roomy.TryAcquireAsync(k, 1, ct));
            }
        });
        traffic.Start(_resources.Length * 2, (w, ct) => LockOnceAsync(w % _resources.Length, ct));
    }

    private void Count(string key, RateLimitDecision d)
    {
        Assert.False(d.IsFallback); // Throw mode: a decision always comes from Redis
        if (d.Allowed) _admitted.AddOrUpdate(key, 1, static (_, n) => n + 1);
    }

    private async Task LockOnceAsync(int r, CancellationToken ct)
    {
        var held = await Locks.TryAcquireAsync(_resources[r], TimeSpan.FromMilliseconds(100), ct);
        if (held is null) return;
        Interlocked.Increment(ref _locksTaken);
        if (Interlocked.Increment(ref _holders[r]) != 1) Interlocked.Increment(ref _twoHolders);
        lock (_tokens)
        {
            // Acquisitions of one resource never overlap, so their tokens are seen in the order they were granted.
            if (held.FencingToken <= _lastToken[r]) Interlocked.Increment(ref _tokenNotIncreasing);
            _lastToken[r] = held.FencingToken;
        }
        await Task.Yield();
        Interlocked.Decrement(ref _holders[r]);
        await held.ReleaseAsync(CancellationToken.None);
    }

    /// <summary>What the callers were told against what Redis holds, once the permits of failed calls are given back.</summary>
    public async Task<Outcome> CheckAsync(CancellationToken ct)
    {
        var db = _redis.GetDatabase();
        async Task<(long Lost, long Duplicated, long OverLimit, string Detail)> CompareAsync()
        {
            long lost = 0, duplicated = 0, over = 0;
            var detail = new List<string>();
            foreach (var (name, limiter, limit, counted) in _roomyKeys.Select(k => (k, Roomy, 1_000_000L, k))
                         .Concat(_tightKeys.Select(k => (k, Tight, (long)TightLimit, "t:" + k))))
            {
                var held = await db.SortedSetLengthAsync(RedisSlidingWindowRateLimiter.LogKey(limiter.Options.KeyPrefix, name));
                var told = _admitted.GetValueOrDefault(counted);
                if (told > held) lost += told - held;
                if (held > told) duplicated += held - told;
                if (held > limit || told > limit) over++;
                if (told != held) detail.Add($"{counted}: told {told}, held {held}");
            }
            return (lost, duplicated, over, string.Join(", ", detail));
        }
        var result = await CompareAsync();
        // Permits of calls that failed after they may have run go back in the background: give them a moment.
        for (var i = 0; i < 100 && result.Duplicated > 0; i++)
        {
            await Task.Delay(50, ct);
            result = await CompareAsync();
        }
        return new Outcome(result.Lost, result.Duplicated, result.OverLimit, Interlocked.Read(ref _twoHolders),
            Interlocked.Read(ref _tokenNotIncreasing), result.Detail, _admitted.Values.Sum(), LocksTaken);
    }

    /// <summary>The invariants' counts: all zero when they held.</summary>
    public sealed record Outcome(long Lost, long Duplicated, long OverLimit, long TwoHolders, long TokensNotIncreasing, string Detail, long Admitted, long LocksTaken)
    {
        public bool Held => Lost == 0 && Duplicated == 0 && OverLimit == 0 && TwoHolders == 0 && TokensNotIncreasing == 0;

        public override string ToString() =>
            $"admitted {Admitted}, lost {Lost}, double-counted {Duplicated}, over the limit {OverLimit}; locks taken {LocksTaken}, two holders {TwoHolders}, fencing token not increasing {TokensNotIncreasing}{(Detail.Length > 0 ? $" ({Detail})" : "")}";
    }
}
