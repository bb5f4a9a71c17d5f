using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Medallion.Threading.Redis;
using Polystore.Redis;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using RedLockNet.SERedis;
using RedLockNet.SERedis.Configuration;
using Polystore.Cli;
using Spectre.Console;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;
using PeerSlidingWindow = RedisRateLimiting.RedisSlidingWindowRateLimiter<string>;
using PeerSlidingWindowOptions = RedisRateLimiting.RedisSlidingWindowRateLimiterOptions;

namespace Polystore.Bench;

/// <summary>
/// <c>polystore-bench redis</c>: the limiter, the lock and the cache against RedisRateLimiting, the usual redis-py
/// Python, the redis-benchmark ceiling, RedLock.net, DistributedLock.Redis and FusionCache, in one run.
/// </summary>
internal static class BenchRedisCommand
{
    private const int Keys = 1000;
    private const int LimiterCallers = 64;
    private const int LockCallers = 16;
    private const int CacheCallers = 64;
    private const int StampedeCallers = 1000;
    private const int PermitLimit = 100;
    private static readonly TimeSpan LimiterWindow = TimeSpan.FromSeconds(1);

    private static readonly Option<double> Seconds = new("--seconds") { Description = "Measured seconds per row and round (default 2).", DefaultValueFactory = _ => 2 };

    private static readonly Option<int> Rounds = new("--rounds") { Description = "Rounds of the Polystore-vs-peer rows, interleaved; the median is reported (default 5).", DefaultValueFactory = _ => 5 };

    private static readonly Option<string[]> Only = new("--only") { Description = "Run only these areas: limiter, lock, cache (default all).", AllowMultipleArgumentsPerToken = true };

    /// <summary>One figure; <paramref name="Rounds"/> holds each interleaved round's figure when it has rounds (the figure is their median).</summary>
    private sealed record Row(string Area, string Name, double PerSecond, string Unit, string Note = "", IReadOnlyList<double>? Rounds = null);

    public static Command Create()
    {
        var cmd = new Command("redis", """
            Side by side on the configured Redis, in one run:
              limiter  decisions/s, 64 callers over 1,000 keys: Polystore vs RedisRateLimiting (sliding window),
                       a redis-py limiter (64 coroutines) and the ceiling (redis-benchmark -c 64 -P 16 EVALSHA
                       of the same script);
              lock     acquire+release pairs/s, 16 callers over 1,000 resources: Polystore vs RedLock.net and DistributedLock.Redis;
              cache    L1 hits/s (one dedicated thread), L2 hits/s (64 callers, memory skipped) and factory calls when
                       1,000 callers stampede one missing key: Polystore vs FusionCache.
            --json prints rows and a 'ratios' object with the targets.
            Peer rows run interleaved with Polystore's for --rounds rounds, in an order that rotates every
            round, and report the median, so a burst of load or a noisy neighbour cannot favour one side.
            """) { Seconds, Rounds, Only };
        cmd.SetAction(async (parse, ct) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Redis is not { } settings) return CommonOptions.MissingStore("redis.yaml");
            var json = parse.GetValue(CommonOptions.Json);
            var seconds = TimeSpan.FromSeconds(Math.Clamp(parse.GetValue(Seconds), 0.5, 60));
            var rounds = Math.Clamp(parse.GetValue(Rounds), 1, 15);
            var only = parse.GetValue(Only) is { Length: > 0 } o ? o : ["limiter", "lock", "cache"];
            bool Wanted(string title) => only.Any(a => title.StartsWith(a, StringComparison.OrdinalIgnoreCase));
            var options = RedisDriverSettings.Build(settings);
            await using var services = CliServices.Build(config);
            var redis = services.GetRequiredService<IConnectionMultiplexer>();
            if (!redis.IsConnected)
            {
                CommonOptions.Error.MarkupLine("[red]Redis is unreachable[/]");
                return ExitCodes.Unreachable;
            }
            var prefix = $"bench:{Guid.NewGuid():N}"[..18];
            var rows = new List<Row>();
            var samples = new Dictionary<(string Area, string Name, string Unit), List<double>>();
            Func<Task> Sample(string area, string name, string unit, Func<Task<double>> measure) => async () =>
            {
                var value = await measure();
                if (!samples.TryGetValue((area, name, unit), out var list)) samples[(area, name, unit)] = list = [];
                list.Add(value);
            };
            var interleaved = new List<(string Title, Func<Task> Run)>
            {
                // Round 0, not recorded: every implementation runs a full round first, so JIT tiering (which
                // takes seconds under load to reach its final code) and thread-pool growth favour no one.
                ("limiter: warm-up", async () => { await LimiterPolystoreAsync(redis, prefix, seconds); await LimiterPeerAsync(redis, prefix, seconds); }),
                ("lock: warm-up", async () =>
                {
                    await LockPolystoreAsync(redis, prefix, seconds);
                    await LockRedLockAsync((ConnectionMultiplexer)redis, prefix, seconds);
                    await LockMedallionAsync(redis, prefix, seconds);
                }),
            };
            for (var round = 1; round <= rounds; round++)
            {
                var r = $" (round {round}/{rounds})";
                // The order rotates every round, so what runs just before (a peer that grew the thread pool, a
                // burst of expiring keys) favours no implementation systematically.
                (string, Func<Task>)[] limiters =
                [
                    ("limiter: Polystore" + r, Sample("limiter", "polystore", "decisions/s", () => LimiterPolystoreAsync(redis, prefix, seconds))),
                    ("limiter: RedisRateLimiting" + r, Sample("limiter", "redis_rate_limiting", "decisions/s", () => LimiterPeerAsync(redis, prefix, seconds))),
                ];
                (string, Func<Task>)[] locks =
                [
                    ("lock: Polystore" + r, Sample("lock", "polystore", "pairs/s", () => LockPolystoreAsync(redis, prefix, seconds))),
                    ("lock: RedLock.net" + r, Sample("lock", "redlock_net", "pairs/s", () => LockRedLockAsync((ConnectionMultiplexer)redis, prefix, seconds))),
                    ("lock: DistributedLock.Redis" + r, Sample("lock", "distributed_lock_redis", "pairs/s", () => LockMedallionAsync(redis, prefix, seconds))),
                ];
                interleaved.AddRange(Rotate(limiters, round));
                interleaved.AddRange(Rotate(locks, round));
            }
            var steps = interleaved.Concat(new (string Title, Func<Task> Run)[]
            {
                ("limiter: seed Python", async () => rows.Add(await LimiterPythonAsync(options, prefix, seconds, ct))),
                ("limiter: redis-benchmark ceiling", async () => rows.Add(await LimiterCeilingAsync(options, prefix, seconds, ct))),
                ("cache: L1 hits", async () => rows.AddRange(await CacheL1Async(redis, prefix, seconds))),
                ("cache: L2 hits", async () => rows.AddRange(await CacheL2Async(redis, prefix, seconds, rounds))),
                ("cache: stampede", async () => rows.AddRange(await StampedeAsync(redis, prefix))),
            }).Where(step => Wanted(step.Title)).ToArray();
            await CommonOptions.Error.Progress().AutoClear(true).StartAsync(async ctx =>
            {
                var task = ctx.AddTask("bench redis", maxValue: steps.Length);
                foreach (var (title, run) in steps)
                {
                    task.Description = title;
                    ct.ThrowIfCancellationRequested();
                    await run();
                    task.Increment(1);
                }
            });
            await CleanUpAsync(redis, prefix);
            rows.InsertRange(0, samples.Select(kv => new Row(kv.Key.Area, kv.Key.Name, Median(kv.Value), kv.Key.Unit,
                $"median of {kv.Value.Count}: " + string.Join(" / ", kv.Value.Select(v => v.ToString("N0", CultureInfo.InvariantCulture))), kv.Value)));

            Row? Find(string area, string name) => rows.FirstOrDefault(r => r.Area == area && r.Name == name);
            double Get(string area, string name) => Find(area, name)?.PerSecond ?? double.NaN;
            BenchRatio Vs(string area, string ours, params string[] peers) => BenchRatio.Of(
                Get(area, ours), peers.Max(p => Get(area, p)),
                Find(area, ours)?.Rounds, BenchRatio.MaxPerRound([.. peers.Select(p => Find(area, p)?.Rounds)]));
            var ratios = new Dictionary<string, BenchRatio>
            {
                ["limiter_vs_redis_rate_limiting"] = Vs("limiter", "polystore", "redis_rate_limiting").WithTarget(2),
                ["limiter_vs_seed_python"] = Vs("limiter", "polystore", "seed_python").WithTarget(5),
                ["limiter_vs_ceiling"] = Vs("limiter", "polystore", "ceiling_redis_benchmark").WithTarget(0.75),
                ["lock_vs_faster_peer"] = Vs("lock", "polystore", "redlock_net", "distributed_lock_redis").WithTarget(1.5),
                ["cache_l1_vs_fusioncache"] = Vs("cache_l1", "polystore", "fusioncache").WithTarget(1),
                ["cache_l2_vs_fusioncache"] = Vs("cache_l2", "polystore", "fusioncache").WithTarget(1.3),
            };
            // With --only, the other areas were not measured: their ratios are NaN and are left out.
            foreach (var name in ratios.Where(r => !double.IsFinite(r.Value.Value)).Select(r => r.Key).ToList()) ratios.Remove(name);
            var stampedeOurs = Get("cache_stampede", "polystore");
            var stampedeFusion = Get("cache_stampede", "fusioncache");
            if (json)
            {
                CommonOptions.WriteJson(new
                {
                    machine = new { cores = Environment.ProcessorCount, note = "shared with other builds while measuring" },
                    seconds_per_row = seconds.TotalSeconds,
                    rows = rows.Select(r => new { area = r.Area, name = r.Name, per_second = Round(r.PerSecond), unit = r.Unit, note = r.Note }),
                    ratios = ratios.ToDictionary(r => r.Key, r => r.Value.Rounded(2)),
                    stampede_factory_calls = double.IsFinite(stampedeOurs)
                        ? (object)new { polystore = stampedeOurs, fusioncache = stampedeFusion, target = 1, met = stampedeOurs == 1 }
                        : null,
                });
            }
            else
            {
                var table = new Table().Border(TableBorder.Rounded).AddColumns("Area", "Implementation", "Figure", "Unit", "Note");
                foreach (var r in rows)
                    table.AddRow(r.Area, r.Name, double.IsNaN(r.PerSecond) ? "-" : r.PerSecond.ToString("N0", CultureInfo.InvariantCulture), r.Unit, Markup.Escape(r.Note));
                AnsiConsole.Write(table);
                var rt = new Table().Border(TableBorder.Rounded).AddColumns("Ratio", "Value", "Target", "Met");
                foreach (var (name, r) in ratios)
                    rt.AddRow(name, r.Value.ToString("0.00", CultureInfo.InvariantCulture) + "x", r.Target?.ToString("0.##", CultureInfo.InvariantCulture) + "x", r.Met == true ? "[green]yes[/]" : "[red]no[/]");
                if (double.IsFinite(stampedeOurs)) rt.AddRow("stampede factory calls", $"{stampedeOurs} (FusionCache {stampedeFusion})", "1", stampedeOurs == 1 ? "[green]yes[/]" : "[red]no[/]");
                AnsiConsole.Write(rt);
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static IEnumerable<T> Rotate<T>(T[] items, int by) => items.Skip(by % items.Length).Concat(items.Take(by % items.Length));

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static double? Round(double v) => double.IsNaN(v) || double.IsInfinity(v) ? null : Math.Round(v, 2);

    private static string[] KeyNames(string prefix) => Enumerable.Range(0, Keys).Select(i => $"{prefix}{i}").ToArray();

    /// <summary>Runs <paramref name="callers"/> loops of <paramref name="op"/> for a short warm-up, then for <paramref name="duration"/>; returns successful ops per second.</summary>
    private static async Task<double> ThroughputAsync(int callers, TimeSpan duration, Func<Task<bool>> op)
    {
        await Loop(TimeSpan.FromMilliseconds(300));
        return await Loop(duration);

        async Task<double> Loop(TimeSpan length)
        {
            var end = Stopwatch.GetTimestamp() + (long)(length.TotalSeconds * Stopwatch.Frequency);
            var started = Stopwatch.GetTimestamp();
            var counts = await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
            {
                long n = 0;
                while (Stopwatch.GetTimestamp() < end)
                    if (await op().ConfigureAwait(false)) n++;
                return n;
            })));
            return counts.Sum() / Stopwatch.GetElapsedTime(started).TotalSeconds;
        }
    }

    // ------------------------------------------------------------------ limiter

    private static async Task<double> LimiterPolystoreAsync(IConnectionMultiplexer redis, string prefix, TimeSpan duration)
    {
        var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions { PermitLimit = PermitLimit, Window = LimiterWindow, KeyPrefix = prefix + ":rl" });
        var keys = KeyNames("k");
        return await ThroughputAsync(LimiterCallers, duration, async () =>
        {
            await limiter.TryAcquireAsync(keys[Random.Shared.Next(Keys)]).ConfigureAwait(false);
            return true;
        });
    }

    private static async Task<double> LimiterPeerAsync(IConnectionMultiplexer redis, string prefix, TimeSpan duration)
    {
        // One limiter per key, constructed as (key, options), as its README shows.
        var limiters = KeyNames(prefix + ":rrl:").Select(k => new PeerSlidingWindow(k, new PeerSlidingWindowOptions
        {
            PermitLimit = PermitLimit,
            Window = LimiterWindow,
            ConnectionMultiplexerFactory = () => redis,
        })).ToArray();
        try
        {
            return await ThroughputAsync(LimiterCallers, duration, async () =>
            {
                using var lease = await limiters[Random.Shared.Next(Keys)].AcquireAsync(1).ConfigureAwait(false);
                return true;
            });
        }
        finally
        {
            foreach (var l in limiters) await l.DisposeAsync();
        }
    }

    private static (string Host, int Port) Endpoint(ConfigurationOptions options) => options.EndPoints[0] switch
    {
        System.Net.DnsEndPoint d => (d.Host, d.Port),
        System.Net.IPEndPoint ip => (ip.Address.ToString(), ip.Port),
        var e => throw new InvalidOperationException($"unsupported endpoint {e}"),
    };

    private static async Task<Row> LimiterPythonAsync(ConfigurationOptions options, string prefix, TimeSpan duration, CancellationToken ct)
    {
        var script = Path.Combine(FindRepoRoot() ?? ".", "benchmarks", "redis_seed_limiter.py");
        var python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        if (!File.Exists(script)) return new("limiter", "seed_python", double.NaN, "decisions/s", "skipped: benchmarks/redis_seed_limiter.py not found (run from the checkout)");
        var probe = await RunAsync(python, ["-c", "import redis"], new(), ct);
        if (probe.ExitCode != 0) return new("limiter", "seed_python", double.NaN, "decisions/s", "skipped: redis-py missing; install with: apt-get install -y python3-redis");
        var (host, port) = Endpoint(options);
        var env = new Dictionary<string, string>
        {
            ["REDIS_HOST"] = host, ["REDIS_PORT"] = port.ToString(CultureInfo.InvariantCulture), ["REDIS_PASSWORD"] = options.Password ?? "",
            ["BENCH_SECONDS"] = duration.TotalSeconds.ToString(CultureInfo.InvariantCulture), ["BENCH_PREFIX"] = prefix + ":py",
        };
        var run = await RunAsync(python, [script], env, ct);
        if (run.ExitCode != 0) return new("limiter", "seed_python", double.NaN, "decisions/s", "failed: " + Polystore.Core.Redactor.Redact(run.Error.Trim().Split('\n')[^1], [options.Password]));
        using var doc = JsonDocument.Parse(run.Output);
        return new("limiter", "seed_python", doc.RootElement.GetProperty("decisions_per_s").GetDouble(), "decisions/s", "redis-py, asyncio, 64 coroutines");
    }

    private static async Task<Row> LimiterCeilingAsync(ConfigurationOptions options, string prefix, TimeSpan duration, CancellationToken ct)
    {
        var (host, port) = Endpoint(options);
        var requests = (int)(100_000 * duration.TotalSeconds);
        // The limiter's own script (loaded by the Polystore row before), EVALSHA pipelined 16 deep by 64 clients.
        List<string> args = ["-h", host, "-p", port.ToString(CultureInfo.InvariantCulture), "-c", "64", "-P", "16", "-n", requests.ToString(CultureInfo.InvariantCulture),
            "-r", Keys.ToString(CultureInfo.InvariantCulture), "--csv",
            "EVALSHA", RedisSlidingWindowRateLimiter.Script.Sha1Hex, "1", $"{{{prefix}:rb:__rand_int__}}:log",
            ((long)LimiterWindow.TotalMicroseconds).ToString(CultureInfo.InvariantCulture), PermitLimit.ToString(CultureInfo.InvariantCulture), "1"];
        // redis-benchmark takes the password only as -a; it is never printed (errors are redacted).
        if (options.Password is { Length: > 0 } pw) args.InsertRange(0, ["-a", pw]);
        var run = await RunAsync("redis-benchmark", args, new(), ct);
        var line = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith("\"EVALSHA", StringComparison.Ordinal));
        if (run.ExitCode != 0 || line is null)
            return new("limiter", "ceiling_redis_benchmark", double.NaN, "decisions/s", "failed: " + Polystore.Core.Redactor.Redact((run.Error + run.Output).Trim(), [options.Password]));
        var rps = double.Parse(line.Split("\",\"")[1].Trim('"'), CultureInfo.InvariantCulture);
        return new("limiter", "ceiling_redis_benchmark", rps, "decisions/s", "redis-benchmark -c 64 -P 16, EVALSHA of the limiter script");
    }

    // ------------------------------------------------------------------ lock

    private static async Task<double> LockPolystoreAsync(IConnectionMultiplexer redis, string prefix, TimeSpan duration)
    {
        var locks = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = prefix + ":lk", Expiry = TimeSpan.FromSeconds(30) });
        var resources = KeyNames("r");
        return await ThroughputAsync(LockCallers, duration, async () =>
        {
            var held = await locks.TryAcquireAsync(resources[Random.Shared.Next(Keys)]).ConfigureAwait(false);
            if (held is null) return false;
            await held.DisposeAsync().ConfigureAwait(false);
            return true;
        });
    }

    private static async Task<double> LockRedLockAsync(ConnectionMultiplexer redis, string prefix, TimeSpan duration)
    {
        using var factory = RedLockFactory.Create(new List<RedLockMultiplexer> { new(redis) });
        var resources = KeyNames(prefix + ":redlock:");
        return await ThroughputAsync(LockCallers, duration, async () =>
        {
            // RedLock.net 2.3 is IAsyncDisposable: its synchronous Dispose blocks a pool thread on the release.
            await using var held = await factory.CreateLockAsync(resources[Random.Shared.Next(Keys)], TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            return held.IsAcquired;
        });
    }

    private static async Task<double> LockMedallionAsync(IConnectionMultiplexer redis, string prefix, TimeSpan duration)
    {
        var db = redis.GetDatabase();
        var resources = KeyNames(prefix + ":dl:");
        return await ThroughputAsync(LockCallers, duration, async () =>
        {
            await using var held = await new RedisDistributedLock(resources[Random.Shared.Next(Keys)], db).TryAcquireAsync().ConfigureAwait(false);
            return held is not null;
        });
    }

    // ------------------------------------------------------------------ cache

    private static FusionCache Fusion(IConnectionMultiplexer redis, string prefix)
    {
        var fc = new FusionCache(new FusionCacheOptions { CacheName = prefix + ":fc" });
        fc.SetupDistributedCache(
            new Microsoft.Extensions.Caching.StackExchangeRedis.RedisCache(new Microsoft.Extensions.Caching.StackExchangeRedis.RedisCacheOptions { ConnectionMultiplexerFactory = () => Task.FromResult(redis), InstanceName = prefix + ":fc:" }),
            new FusionCacheSystemTextJsonSerializer());
        return fc;
    }

    private static readonly FusionCacheEntryOptions FusionDefaults = new() { Duration = TimeSpan.FromMinutes(10) };
    private static readonly FusionCacheEntryOptions FusionL2Only = new() { Duration = TimeSpan.FromMinutes(10), SkipMemoryCacheRead = true, SkipMemoryCacheWrite = true };

    private static async Task<Row[]> CacheL1Async(IConnectionMultiplexer redis, string prefix, TimeSpan duration)
    {
        var keys = KeyNames("user:");
        await using var ours = await RedisTieredCache.CreateAsync(redis, new BenchCacheOptions(prefix).L1);
        using var fc = Fusion(redis, prefix);
        // The peer is also measured memory-only (no L2 configured) and its better figure is reported.
        using var fcMemory = new FusionCache(new FusionCacheOptions { CacheName = prefix + ":fcm" });
        foreach (var k in keys)
        {
            await ours.GetOrSetAsync(k, _ => Task.FromResult<string?>("value of " + k));
            await fc.GetOrSetAsync(k, _ => Task.FromResult("value of " + k), FusionDefaults);
            await fcMemory.GetOrSetAsync(k, _ => Task.FromResult("value of " + k), FusionDefaults);
        }
        // Memory hits complete synchronously: time them on a dedicated thread, never on the thread pool.
        var polystore = DedicatedThreadLoop(duration, i => ours.GetOrSetAsync(keys[i], static _ => Task.FromResult<string?>("miss")).GetAwaiter().GetResult());
        var fusion = DedicatedThreadLoop(duration, i => fc.GetOrSetAsync(keys[i], static _ => Task.FromResult("miss"), FusionDefaults).GetAwaiter().GetResult());
        var fusionMemory = DedicatedThreadLoop(duration, i => fcMemory.GetOrSetAsync(keys[i], static _ => Task.FromResult("miss"), FusionDefaults).GetAwaiter().GetResult());
        return
        [
            new("cache_l1", "polystore", polystore, "hits/s", "GetOrSetAsync, one dedicated thread, L2 configured"),
            new("cache_l1", "fusioncache", Math.Max(fusion, fusionMemory), "hits/s",
                $"GetOrSetAsync, one dedicated thread; best of with L2 {fusion:N0} / memory-only {fusionMemory:N0}"),
        ];
    }

    private static double DedicatedThreadLoop(TimeSpan duration, Func<int, string?> hit)
    {
        double result = 0;
        var thread = new Thread(() =>
        {
            Run(TimeSpan.FromMilliseconds(300));
            result = Run(duration);
        }) { IsBackground = true };
        thread.Start();
        thread.Join();
        return result;

        double Run(TimeSpan length)
        {
            var start = Stopwatch.GetTimestamp();
            var end = start + (long)(length.TotalSeconds * Stopwatch.Frequency);
            long n = 0;
            while (Stopwatch.GetTimestamp() < end)
            {
                for (var i = 0; i < Keys; i++)
                    if (hit(i) is null) throw new InvalidOperationException("an L1 hit returned nothing");
                n += Keys;
            }
            return n / Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
    }

    private static async Task<Row[]> CacheL2Async(IConnectionMultiplexer redis, string prefix, TimeSpan duration, int rounds)
    {
        var keys = KeyNames("item:");
        await using var ours = await RedisTieredCache.CreateAsync(redis, new BenchCacheOptions(prefix).L2Only);
        using var fc = Fusion(redis, prefix);
        foreach (var k in keys)
        {
            await ours.GetOrSetAsync(k, _ => Task.FromResult<string?>("value of " + k));
            await fc.GetOrSetAsync(k, _ => Task.FromResult("value of " + k), FusionL2Only);
        }
        var polystore = new List<double>();
        var fusion = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            polystore.Add(await ThroughputAsync(CacheCallers, duration, async () =>
                await ours.GetOrSetAsync(keys[Random.Shared.Next(Keys)], static _ => Task.FromResult<string?>(null)).ConfigureAwait(false) is not null));
            fusion.Add(await ThroughputAsync(CacheCallers, duration, async () =>
                await fc.GetOrSetAsync(keys[Random.Shared.Next(Keys)], static _ => Task.FromResult<string?>(null), FusionL2Only).ConfigureAwait(false) is not null));
        }
        return
        [
            new("cache_l2", "polystore", Median(polystore), "hits/s", $"no L1, 64 callers over 1,000 keys; median of {rounds}", polystore),
            new("cache_l2", "fusioncache", Median(fusion), "hits/s", $"SkipMemoryCacheRead/Write, 64 callers over 1,000 keys; median of {rounds}", fusion),
        ];
    }

    private static async Task<Row[]> StampedeAsync(IConnectionMultiplexer redis, string prefix)
    {
        await using var ours = await RedisTieredCache.CreateAsync(redis, new BenchCacheOptions(prefix).L1);
        using var fc = Fusion(redis, prefix);
        var oursCalls = 0;
        var fusionCalls = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = Enumerable.Range(0, StampedeCallers).Select(_ => Task.Run(async () =>
        {
            await gate.Task;
            await ours.GetOrSetAsync("stampede", async _ => { Interlocked.Increment(ref oursCalls); await Task.Delay(50); return "v"; });
        })).Concat(Enumerable.Range(0, StampedeCallers).Select(_ => Task.Run(async () =>
        {
            await gate.Task;
            await fc.GetOrSetAsync("stampede", async _ => { Interlocked.Increment(ref fusionCalls); await Task.Delay(50); return "v"; }, FusionDefaults);
        }))).ToArray();
        gate.SetResult();
        await Task.WhenAll(tasks);
        return
        [
            new("cache_stampede", "polystore", oursCalls, "factory calls", "1,000 callers, one missing key"),
            new("cache_stampede", "fusioncache", fusionCalls, "factory calls", "1,000 callers, one missing key"),
        ];
    }

    private sealed class BenchCacheOptions(string prefix)
    {
        public RedisTieredCacheOptions L1 => new() { KeyPrefix = prefix + ":pc", UseL1 = true, DefaultTtl = TimeSpan.FromMinutes(10), L1Ttl = TimeSpan.FromMinutes(10) };

        public RedisTieredCacheOptions L2Only => new() { KeyPrefix = prefix + ":pc2", DefaultTtl = TimeSpan.FromMinutes(10) };
    }

    // ------------------------------------------------------------------ plumbing

    private static async Task CleanUpAsync(IConnectionMultiplexer redis, string prefix)
    {
        var db = redis.GetDatabase();
        foreach (var server in redis.GetServers().Where(s => !s.IsReplica && s.IsConnected))
        {
            var batch = new List<object>();
            foreach (var pattern in new[] { prefix + "*", "{" + prefix + "*" })
            {
                await foreach (var key in server.KeysAsync(db.Database, pattern, 1000))
                {
                    batch.Add(key);
                    if (batch.Count == 1000) { await server.ExecuteAsync("UNLINK", batch); batch.Clear(); }
                }
            }
            if (batch.Count > 0) await server.ExecuteAsync("UNLINK", batch);
        }
    }

    private static string? FindRepoRoot()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Polystore.slnx"))) return dir.FullName;
        return null;
    }

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string file, IEnumerable<string> args, Dictionary<string, string> env, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        try
        {
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEndAsync(ct);
            var error = p.StandardError.ReadToEndAsync(ct);
            await p.WaitForExitAsync(ct);
            return (p.ExitCode, await output, await error);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (127, "", $"{file}: {e.Message}");
        }
    }
}
