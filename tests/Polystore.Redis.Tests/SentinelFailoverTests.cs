using System.Collections.Concurrent;
using System.Diagnostics;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// Failovers of the private Sentinel setup under traffic: a forced one (SENTINEL FAILOVER) and a SIGKILLed primary
/// (the sentinels agree it is down and elect). Each scenario reports what callers saw as a <see cref="ChaosRow"/>, checks
/// its invariant, and leaves the topology healthy (the old primary back as a replica). They share one set of servers,
/// so they run one after the other.
/// </summary>
[Collection(nameof(SentinelFailoverTests))]
[CollectionDefinition(nameof(SentinelFailoverTests), DisableParallelization = true)]
[Trait("Category", "Chaos")]
public sealed class SentinelFailoverTests
{
    private static readonly TimeSpan Healthy = TimeSpan.FromSeconds(60);

    // A failed call that took no longer than this failed fast (the components' operation timeout is 1 s).
    private const double FailFastMs = 1500;

    [Theory]
    [InlineData("failover")]
    [InlineData("kill")]
    public async Task Cache_reads_recover_on_the_new_primary_the_multiplexer_follows(string fault)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var topology = await SentinelTopology.OpenAsync();
        await using var redis = await topology.ConnectAsync();
        await using var cache = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = TestServers.UniqueName("sentinel-cache") }, ct);
        var ops = new Ops();

        async Task WorkerAsync(int worker, CancellationToken stop)
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var key = $"w{worker}:{i % 50}";
                await ops.RunAsync(async () =>
                {
                    await cache.SetAsync(key, i, cancellationToken: ct);
                    var (found, value) = await cache.TryGetAsync<int>(key, ct);
                    return found && value == i;
                });
                await Task.Delay(2, ct);
            }
        }

        var run = await RunFaultAsync(topology, redis, fault, ops, WorkerAsync, workers: 4, ct);

        // The multiplexer writes where the sentinels say, and the cache serves through it.
        Assert.Equal(await topology.PrimaryPortAsync(), SentinelTopology.MultiplexerPrimary(redis));
        await cache.SetAsync("after", "v", cancellationToken: ct);
        Assert.Equal((true, "v"), await cache.TryGetAsync<string>("after", ct));
        Assert.True(ops.SucceededAfter(run.Switched) > 0, "cache calls succeeded on the new primary");
        ChaosReport.Record(ops.Row($"redis-sentinel-{fault}-cache", FaultName(fault) + ", cache set+get under 4 callers", [run],
            "multiplexer follows the new primary; cache set+get served again: held"));
    }

    [Theory]
    [InlineData("failover", 0)]
    [InlineData("failover", 1)]
    [InlineData("kill", 0)]
    [InlineData("kill", 1)]
    public async Task Limiter_admissions_lost_with_the_old_primary_are_the_over_admission_bound_and_waiting_for_a_replica_closes_it(string fault, int waitForReplicas)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var topology = await SentinelTopology.OpenAsync();
        await using var redis = await topology.ConnectAsync();
        var prefix = TestServers.UniqueName("sentinel-rl");
        // A window longer than the scenario and a limit it never reaches: every admission stays in the log, so an
        // admission the callers were told about and the new primary does not have is one the window will grant again.
        var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
        {
            PermitLimit = 10_000_000, Window = TimeSpan.FromMinutes(10), KeyPrefix = prefix, WaitForReplicas = waitForReplicas,
        });
        var admitted = 0L;
        var ops = new Ops();

        async Task WorkerAsync(int worker, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                await ops.RunAsync(async () =>
                {
                    var d = await limiter.TryAcquireAsync("k", 1, ct);
                    if (d.Allowed && !d.IsFallback) Interlocked.Increment(ref admitted);
                    return !d.IsFallback;
                });
                await Task.Delay(1, ct);
            }
        }

        var run = await RunFaultAsync(topology, redis, fault, ops, WorkerAsync, workers: 8, ct);

        // Entries given back (calls that failed after they may have run) are settled once the count stops moving.
        var log = RedisSlidingWindowRateLimiter.LogKey(prefix, "k");
        long inLog = -1, previous;
        do
        {
            previous = inLog;
            await Task.Delay(200, ct);
            inLog = await redis.GetDatabase().SortedSetLengthAsync(log);
        }
        while (inLog != previous);
        var lost = Math.Max(0, Interlocked.Read(ref admitted) - inLog);
        Assert.True(Interlocked.Read(ref admitted) > 0);
        if (waitForReplicas > 0) Assert.Equal(0, lost); // with WAIT, no admission a caller saw is lost: never over the limit
        var invariant = waitForReplicas > 0
            ? "no admission lost (WaitForReplicas=1): never over the limit: held"
            : $"over-admission bound = {lost} admissions lost with the old primary (measured)";
        ChaosReport.Record(ops.Row($"redis-sentinel-{fault}-limiter-wait{waitForReplicas}", FaultName(fault) + $", limiter under 8 callers, WaitForReplicas={waitForReplicas}",
            [run], invariant, lost));
    }

    [Fact]
    public async Task Fencing_tokens_keep_increasing_across_killed_primaries()
    {
        var ct = TestContext.Current.CancellationToken;
        var rounds = ChaosReport.Long ? 20 : 1;
        await using var topology = await SentinelTopology.OpenAsync();
        await using var redis = await topology.ConnectAsync();
        var locks = new RedisLockProvider(redis, new RedisLockOptions
        {
            KeyPrefix = TestServers.UniqueName("sentinel-lock"), Expiry = TimeSpan.FromSeconds(5), WaitForReplicas = 1,
        });
        var gate = new Lock();
        var tokens = new List<long>();
        var seen = new HashSet<long>();
        long backwards = 0, duplicated = 0, overlapping = 0;
        var holders = 0;
        var ops = new Ops();

        async Task WorkerAsync(int worker, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                await ops.RunAsync(async () =>
                {
                    await using var held = await locks.TryAcquireAsync("fenced", TimeSpan.FromMilliseconds(200), ct);
                    if (held is null) return true; // contended: a fair answer, not an error
                    if (Interlocked.Increment(ref holders) > 1) Interlocked.Increment(ref overlapping);
                    lock (gate)
                    {
                        // The lock orders holders, so tokens in the order they were handed out must increase.
                        if (tokens.Count > 0 && held.FencingToken <= tokens[^1]) backwards++;
                        if (!seen.Add(held.FencingToken)) duplicated++;
                        tokens.Add(held.FencingToken);
                    }
                    await Task.Delay(1, ct);
                    Interlocked.Decrement(ref holders);
                    return true;
                });
            }
        }

        var runs = new List<FaultRun>();
        for (var round = 0; round < rounds; round++)
            runs.Add(await RunFaultAsync(topology, redis, "kill", ops, WorkerAsync, workers: 4, ct));

        Assert.True(tokens.Count > rounds, "locks were taken");
        Assert.All(runs, r => Assert.True(ops.SucceededAfter(r.Switched) > 0, "locks were taken on the new primary"));
        Assert.Equal(0, backwards);
        Assert.Equal(0, duplicated);
        Assert.Equal(0, overlapping);
        ChaosReport.Record(ops.Row("redis-sentinel-kill-lock-fencing", $"SIGKILL of the Redis primary x{rounds}, lock acquire/release under 4 callers, WaitForReplicas=1 (worst round)",
            runs, $"{tokens.Count} tokens strictly increasing, none repeated, never two holders: held", duplicated));
    }

    private static string FaultName(string fault) => fault == "kill" ? "SIGKILL of the Redis primary" : "SENTINEL FAILOVER";

    private sealed record FaultRun(long Fault, long Switched, long End, double RecoverMs);

    /// <summary>
    /// Runs <paramref name="workers"/> callers, applies the fault once they are going, keeps them going until the
    /// multiplexer writes to the new primary and they have succeeded there, then stops them and restores the
    /// topology (a killed primary restarts as a replica of the new one).
    /// </summary>
    private static async Task<FaultRun> RunFaultAsync(SentinelTopology topology, IConnectionMultiplexer redis, string fault, Ops ops,
        Func<int, CancellationToken, Task> worker, int workers, CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var tasks = Enumerable.Range(0, workers).Select(w => Task.Run(() => worker(w, stop.Token), ct)).ToArray();
        var warm = ops.Succeeded;
        await Poll.UntilAsync(() => ops.Succeeded >= warm + 20, "traffic before the fault", ct, TimeSpan.FromSeconds(20));
        var old = await topology.PrimaryPortAsync() ?? throw new InvalidOperationException("no primary");
        var faultAt = Stopwatch.GetTimestamp();
        if (fault == "kill") await topology.KillPrimaryAsync();
        else await topology.ForceFailoverAsync();
        long switched = 0;
        var restarted = fault != "kill";
        try
        {
            await Poll.UntilAsync(async () =>
            {
                if (await topology.PrimaryPortAsync() is { } p && p != old && SentinelTopology.MultiplexerPrimary(redis) == p)
                    switched = Stopwatch.GetTimestamp();
                return switched != 0;
            }, "the multiplexer to follow the new primary", ct, TimeSpan.FromSeconds(45));
            // The killed node comes back as a replica of the new one, as its supervisor would restart it: until it is in
            // sync, components that wait for a replica's acknowledgement have none.
            if (!restarted)
            {
                await topology.RestartAsReplicaAsync(old, ct);
                restarted = true;
            }
            await Poll.UntilAsync(() => ops.SucceededAfter(switched) >= 20, "calls to succeed on the new primary", ct, TimeSpan.FromSeconds(45));
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await Task.WhenAll(tasks);
            }
            catch (OperationCanceledException)
            {
            }
            if (!restarted) await topology.RestartAsReplicaAsync(old, CancellationToken.None);
        }
        await topology.WaitHealthyAsync(Healthy, ct);
        var firstOk = ops.FirstSuccessAfter(switched);
        return new FaultRun(faultAt, switched, Stopwatch.GetTimestamp(), Stopwatch.GetElapsedTime(faultAt, firstOk).TotalMilliseconds);
    }

    /// <summary>Every call's start, end and outcome; a call that throws or returns false failed.</summary>
    private sealed class Ops
    {
        private readonly ConcurrentQueue<(long Start, long End, bool Ok)> _calls = new();
        private long _succeeded;

        public long Succeeded => Interlocked.Read(ref _succeeded);

        public async Task RunAsync(Func<Task<bool>> call)
        {
            var start = Stopwatch.GetTimestamp();
            bool ok;
            try
            {
                ok = await call();
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                ok = false;
            }
            _calls.Enqueue((start, Stopwatch.GetTimestamp(), ok));
            if (ok) Interlocked.Increment(ref _succeeded);
        }

        public long SucceededAfter(long at) => _calls.Count(c => c.Ok && c.Start >= at);

        public long FirstSuccessAfter(long at) => _calls.Where(c => c.Ok && c.Start >= at).Select(c => c.End).DefaultIfEmpty(at).Min();

        /// <summary>The row; with several runs (rounds), the unavailable window and the recovery are the worst round's.</summary>
        public ChaosRow Row(string scenario, string fault, IReadOnlyList<FaultRun> runs, string invariant, long lostOrDuplicated = 0)
        {
            var calls = _calls.ToArray();
            var failed = calls.Where(c => !c.Ok).ToArray();
            var fast = failed.Count(c => Stopwatch.GetElapsedTime(c.Start, c.End).TotalMilliseconds <= FailFastMs);
            double unavailable = 0;
            for (var r = 0; r < runs.Count; r++)
            {
                var from = r == 0 ? long.MinValue : runs[r - 1].End;
                var inRound = failed.Where(c => c.Start >= from && c.Start < runs[r].End).ToArray();
                if (inRound.Length > 0)
                    unavailable = Math.Max(unavailable, Stopwatch.GetElapsedTime(inRound.Min(c => c.Start), inRound.Max(c => c.End)).TotalMilliseconds);
            }
            var recover = runs.Max(r => r.RecoverMs);
            var lost = scenario.Contains("limiter", StringComparison.Ordinal) ? lostOrDuplicated : 0;
            var duplicated = scenario.Contains("fencing", StringComparison.Ordinal) ? lostOrDuplicated : 0;
            return new ChaosRow(scenario, fault, calls.Length, failed.Length, fast, lost, duplicated, unavailable, recover, invariant);
        }
    }
}
