using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Medallion.Threading.Redis;
using Microsoft.Extensions.DependencyInjection;
using Polystore.Cli;
using Polystore.Redis;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using RedLockNet.SERedis;
using RedLockNet.SERedis.Configuration;
using Spectre.Console;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Backplane.StackExchangeRedis;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;
using PeerSlidingWindow = RedisRateLimiting.RedisSlidingWindowRateLimiter<string>;
using PeerSlidingWindowOptions = RedisRateLimiting.RedisSlidingWindowRateLimiterOptions;

namespace Polystore.Bench;

/// <summary>
/// <c>polystore-bench redis</c>: the limiter, the lock and the cache against RedisRateLimiting, the usual redis-py
/// limiter, redis-benchmark, RedLock.net, DistributedLock.Redis and FusionCache, in one run, each peer set up as its
/// documentation shows; and the limiter from 1,000 to 1,000,000 keys.
/// </summary>
internal static class BenchRedisCommand
{
    private const int Keys = 1000;
    private static readonly int[] LimiterCallerSteps = [1, 4, 16, 64];
    private const int PythonCallers = 64;
    private const int LockCallers = 16;
    private const int CacheCallers = 64;
    private const int StampedeCallers = 1000;
    private const int PermitLimit = 100;
    private static readonly TimeSpan LimiterWindow = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LockExpiry = TimeSpan.FromSeconds(30);

    private static readonly Option<double> Seconds = new("--seconds") { Description = "Measured seconds per row and round (default 2).", DefaultValueFactory = _ => 2 };

    private static readonly Option<int> Rounds = new("--rounds") { Description = "Rounds, interleaved, the order rotated every round; the median is reported (default 5).", DefaultValueFactory = _ => 5 };

    private static readonly Option<string[]> Only = new("--only") { Description = "Run only these areas: limiter, lock, cache, scale (default all).", AllowMultipleArgumentsPerToken = true };

    private static readonly Option<int> ScaleKeys = new("--scale-keys") { Description = "Largest key count of the scale area, in steps of 10 from 1,000 (default 1,000,000).", DefaultValueFactory = _ => 1_000_000 };

    /// <summary>One round of one row: a rate, failures (acquisitions refused), and latency percentiles when timed per call.</summary>
    private sealed record Sample(double PerSecond, long Failed = 0, double P50Ms = double.NaN, double P99Ms = double.NaN, string Extra = "")
    {
        /// <summary>This process's CPU (every thread) per successful call, in µs.</summary>
        public double ClientUs { get; init; } = double.NaN;

        /// <summary>Redis's CPU (used_cpu_user + used_cpu_sys, primaries) per successful call, in µs.</summary>
        public double RedisUs { get; init; } = double.NaN;
    }

    /// <summary>A reported row: the medians of its rounds, and the rounds themselves.</summary>
    private sealed record Row(string Area, string Name, string Unit, string Note, IReadOnlyList<Sample> Samples)
    {
        /// <summary>The note, with why the row has no figure when it has none (a peer tool missing, a failed run).</summary>
        public string FullNote => Samples.All(s => !double.IsFinite(s.PerSecond)) && Samples.LastOrDefault()?.Extra is { Length: > 0 } why ? $"{Note}; {why}" : Note;

        public double PerSecond => Median(Samples.Select(s => s.PerSecond));

        public double P50Ms => Median(Samples.Select(s => s.P50Ms));

        public double P99Ms => Median(Samples.Select(s => s.P99Ms));

        public long Failed => Samples.Sum(s => s.Failed);

        public IReadOnlyList<double> Rounds => [.. Samples.Select(s => s.PerSecond)];

        public double ClientUs => Median(Samples.Select(s => s.ClientUs));

        public double RedisUs => Median(Samples.Select(s => s.RedisUs));

        /// <summary>Client and Redis CPU per call, per round (what the CPU ratios compare).</summary>
        public IReadOnlyList<double> CpuRounds => [.. Samples.Select(s => s.ClientUs + s.RedisUs)];
    }

    /// <summary>The Redis whose CPU each measured loop reads (INFO cpu), set once per run.</summary>
    private static IConnectionMultiplexer? s_cpuServer;

    private static async Task<double> RedisCpuSecondsAsync()
    {
        if (s_cpuServer is null) return double.NaN;
        double total = 0;
        foreach (var server in s_cpuServer.GetServers().Where(s => !s.IsReplica && s.IsConnected))
        {
            var text = (string?)await server.ExecuteAsync("INFO", "cpu") ?? "";
            foreach (var line in text.Split('\n'))
                if (line.StartsWith("used_cpu_user:", StringComparison.Ordinal) || line.StartsWith("used_cpu_sys:", StringComparison.Ordinal))
                    total += double.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim(), CultureInfo.InvariantCulture);
        }
        return total;
    }

    public static Command Create()
    {
        var cmd = new Command("redis", """
            Side by side on the configured Redis, in one run, every peer set up as its documentation shows:
              limiter  decisions/s and p50/p99 latency at 1, 4, 16 and 64 callers over 1,000 keys: Polystore vs
                       RedisRateLimiting (sliding window); at 64: a redis-py limiter, redis-benchmark EVALSHA of
                       the same script one decision per call, and the ceiling: redis-benchmark pipelining the
                       script with as many decisions per call as Polystore's batches carry, and Redis CPU per
                       decision from INFO commandstats;
              lock     acquire + awaited release pairs/s, 16 callers over 1,000 resources, with and without
                       auto-extension: Polystore vs RedLock.net and DistributedLock.Redis (both always auto-extend);
              cache    L1 hits/s (one dedicated thread), L2 hits/s (64 callers, memory skipped: not FusionCache's
                       recommended setup), hits/s in FusionCache's recommended setup (memory + Redis + backplane),
                       and factory calls when 1,000 callers stampede one missing key: Polystore vs FusionCache;
              scale    the limiter at 1,000 to 1,000,000 keys: decisions/s and Redis memory per key.
            Every row runs once per round, interleaved with the others of its area in an order that rotates every
            round; each round is printed and the median reported. --json prints rows (with their rounds) and a
            'ratios' object: {value, target, met, rounds}.
            """) { Seconds, Rounds, Only, ScaleKeys };
        cmd.SetAction(async (parse, ct) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Redis is not { } settings) return CommonOptions.MissingStore("redis.yaml");
            var json = parse.GetValue(CommonOptions.Json);
            var seconds = TimeSpan.FromSeconds(Math.Clamp(parse.GetValue(Seconds), 0.5, 60));
            var rounds = Math.Clamp(parse.GetValue(Rounds), 1, 15);
            var scaleMax = Math.Clamp(parse.GetValue(ScaleKeys), 1000, 1_000_000);
            var only = parse.GetValue(Only) is { Length: > 0 } o ? o : ["limiter", "lock", "cache", "scale"];
            bool Wanted(string area) => only.Any(a => area.StartsWith(a, StringComparison.OrdinalIgnoreCase));
            var options = RedisDriverSettings.Build(settings);
            await using var services = CliServices.Build(config);
            var redis = services.GetRequiredService<IConnectionMultiplexer>();
            if (!redis.IsConnected)
            {
                CommonOptions.Error.MarkupLine("[red]Redis is unreachable[/]");
                return ExitCodes.Unreachable;
            }
            var prefix = $"bench:{Guid.NewGuid():N}"[..18];
            // INFO (cpu, commandstats, memory) is an admin command to StackExchange.Redis: read through a connection of its own.
            var adminOptions = options.Clone();
            adminOptions.AllowAdmin = true;
            await using var admin = await ConnectionMultiplexer.ConnectAsync(adminOptions);
            var bench = new Bench(redis, (ConnectionMultiplexer)redis, admin, options, prefix, seconds, ct);
            s_cpuServer = admin;
            var rows = new List<Row>();
            try
            {
                if (Wanted("limiter")) rows.AddRange(await bench.LimiterAsync(rounds));
                if (Wanted("lock")) rows.AddRange(await bench.LockAsync(rounds));
                if (Wanted("cache")) rows.AddRange(await bench.CacheAsync(rounds));
                if (Wanted("scale")) rows.AddRange(await bench.ScaleAsync(scaleMax));
            }
            finally
            {
                await CleanUpAsync(redis, prefix);
            }

            Row? Find(string area, string name) => rows.FirstOrDefault(r => r.Area == area && r.Name == name);
            BenchRatio? Vs(string area, string ours, params string[] peers)
            {
                if (Find(area, ours) is not { } o || peers.Select(p => Find(area, p)).ToArray() is var found && found.Any(f => f is null)) return null;
                return BenchRatio.Of(o.PerSecond, found.Max(f => f!.PerSecond), o.Rounds, BenchRatio.MaxPerRound([.. found.Select(f => f!.Rounds)]));
            }
            // Lower is better: ours over the peer's, per round too.
            BenchRatio? LatencyVs(string area, string ours, string peer)
            {
                if (Find(area, ours) is not { } o || Find(area, peer) is not { } p) return null;
                return BenchRatio.Of(o.P99Ms, p.P99Ms, [.. o.Samples.Select(s => s.P99Ms)], [.. p.Samples.Select(s => s.P99Ms)]);
            }
            // CPU per call (client + Redis): the faster peer's over ours, so above 1 means Polystore spends less.
            // Steadier than throughput on a shared machine, where each side's share of the cores decides its rate.
            BenchRatio? CpuVs(string area, string ours, params string[] peers)
            {
                if (Find(area, ours) is not { } o || peers.Select(p => Find(area, p)).ToArray() is var found && found.Any(f => f is null)) return null;
                var best = found.MinBy(f => f!.ClientUs + f.RedisUs)!;
                IReadOnlyList<double>? perRound = found.All(f => f!.Samples.Count == o.Samples.Count)
                    ? [.. Enumerable.Range(0, o.Samples.Count).Select(i => found.Min(f => f!.CpuRounds[i]))]
                    : null;
                return BenchRatio.Of(best.ClientUs + best.RedisUs, o.ClientUs + o.RedisUs, perRound, o.CpuRounds);
            }
            var ratios = new Dictionary<string, BenchRatio?>();
            foreach (var n in LimiterCallerSteps)
            {
                ratios[$"limiter_{n}_callers_vs_redis_rate_limiting"] = Vs("limiter", $"polystore_{n}", $"redis_rate_limiting_{n}")?.WithTarget(n >= 16 ? 2 : 1.2);
                ratios[$"limiter_{n}_callers_p99_vs_redis_rate_limiting"] = LatencyVs("limiter", $"polystore_{n}", $"redis_rate_limiting_{n}")?.WithTarget(1, atMost: true);
            }
            ratios["limiter_64_callers_vs_seed_python"] = Vs("limiter", "polystore_64", "seed_python_64")?.WithTarget(5);
            ratios["limiter_64_callers_vs_ceiling"] = Vs("limiter", "polystore_64", "ceiling_redis_benchmark_batched");
            ratios["lock_vs_faster_peer"] = Vs("lock", "polystore", "redlock_net", "distributed_lock_redis")?.WithTarget(1.5);
            ratios["lock_autoextend_vs_faster_peer"] = Vs("lock", "polystore_autoextend", "redlock_net", "distributed_lock_redis")?.WithTarget(1.5);
            ratios["lock_cpu_per_pair_faster_peer_over_polystore"] = CpuVs("lock", "polystore", "redlock_net", "distributed_lock_redis");
            ratios["lock_autoextend_cpu_per_pair_faster_peer_over_polystore"] = CpuVs("lock", "polystore_autoextend", "redlock_net", "distributed_lock_redis");
            foreach (var n in LimiterCallerSteps)
                ratios[$"limiter_{n}_callers_cpu_per_decision_peer_over_polystore"] = CpuVs("limiter", $"polystore_{n}", $"redis_rate_limiting_{n}");
            ratios["cache_l1_vs_fusioncache"] = Vs("cache_l1", "polystore", "fusioncache")?.WithTarget(1);
            ratios["cache_l2_vs_fusioncache"] = Vs("cache_l2", "polystore", "fusioncache_l2_only")?.WithTarget(1.3);
            ratios["cache_recommended_vs_fusioncache"] = Vs("cache_recommended", "polystore", "fusioncache");
            // With --only, the other areas were not measured: their ratios are left out.
            var measured = ratios.Where(r => r.Value is not null && double.IsFinite(r.Value.Value)).ToDictionary(r => r.Key, r => r.Value!);
            var stampede = (Ours: Find("cache_stampede", "polystore")?.PerSecond, Fusion: Find("cache_stampede", "fusioncache")?.PerSecond);
            var versions = PeerVersions();
            if (json)
            {
                CommonOptions.WriteJson(new
                {
                    machine = new { cores = Environment.ProcessorCount, load_average = LoadAverage(), note = "measured on a shared machine; other builds and tests ran meanwhile" },
                    redis_version = RedisVersion(redis),
                    versions,
                    seconds_per_row = seconds.TotalSeconds,
                    rounds,
                    rows = rows.Select(r => new
                    {
                        area = r.Area, name = r.Name, per_second = Round(r.PerSecond), unit = r.Unit,
                        p50_ms = Round(r.P50Ms, 3), p99_ms = Round(r.P99Ms, 3),
                        client_cpu_us = Round(r.ClientUs, 1), redis_cpu_us = Round(r.RedisUs, 1),
                        failed = r.Samples.Any(s => s.Failed > 0) || r.Area is "lock" or "scale" ? r.Failed : (long?)null,
                        note = r.FullNote,
                        rounds = r.Samples.Select(s => new { per_second = Round(s.PerSecond), p50_ms = Round(s.P50Ms, 3), p99_ms = Round(s.P99Ms, 3), client_cpu_us = Round(s.ClientUs, 1), redis_cpu_us = Round(s.RedisUs, 1), failed = r.Area is "lock" or "scale" ? s.Failed : (long?)null, extra = s.Extra.Length > 0 ? s.Extra : null }),
                    }),
                    ratios = measured.ToDictionary(r => r.Key, r => r.Value.Rounded(2)),
                    stampede_factory_calls = stampede.Ours is { } so
                        ? (object)new { polystore = so, fusioncache = stampede.Fusion, target = 1, met = so == 1 }
                        : null,
                });
            }
            else
            {
                AnsiConsole.MarkupLine($"[grey]{Markup.Escape($"{Environment.ProcessorCount} cores, load average {LoadAverage()}, Redis {RedisVersion(redis)}; {string.Join(", ", versions.Select(v => $"{v.Key} {v.Value}"))}")}[/]");
                var table = new Table().Border(TableBorder.Rounded).AddColumns("Area", "Implementation", "Figure", "Unit", "p50 ms", "p99 ms", "Client µs", "Redis µs", "Failed", "Rounds", "Note");
                foreach (var r in rows)
                {
                    table.AddRow(r.Area, r.Name, Fmt(r.PerSecond), r.Unit, Fmt(r.P50Ms, "0.00"), Fmt(r.P99Ms, "0.00"), Fmt(r.ClientUs, "0.0"), Fmt(r.RedisUs, "0.0"),
                        r.Area is "lock" or "scale" || r.Failed > 0 ? r.Failed.ToString("N0", CultureInfo.InvariantCulture) : "",
                        string.Join(" / ", r.Rounds.Select(v => Fmt(v))), Markup.Escape(r.FullNote));
                }
                AnsiConsole.Write(table);
                var rt = new Table().Border(TableBorder.Rounded).AddColumns("Ratio", "Value", "Target", "Met", "Rounds");
                foreach (var (name, r) in measured)
                {
                    rt.AddRow(name, r.Value.ToString("0.00", CultureInfo.InvariantCulture) + "x",
                        r.Target is { } t ? (r.AtMost ? "<= " : ">= ") + t.ToString("0.##", CultureInfo.InvariantCulture) + "x" : "-",
                        r.Met switch { true => "[green]yes[/]", false => "[red]no[/]", null => "-" },
                        r.Rounds is null ? "" : string.Join(" / ", r.Rounds.Select(v => v.ToString("0.00", CultureInfo.InvariantCulture))));
                }
                if (stampede.Ours is { } s) rt.AddRow("stampede factory calls", $"{s} (FusionCache {stampede.Fusion})", "1", s == 1 ? "[green]yes[/]" : "[red]no[/]", "");
                AnsiConsole.Write(rt);
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static string Fmt(double v, string format = "N0") => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "";

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static double? Round(double v, int digits = 2) => double.IsFinite(v) ? Math.Round(v, digits) : null;

    private static string LoadAverage()
    {
        try
        {
            return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static string RedisVersion(IConnectionMultiplexer redis) =>
        redis.GetServers().FirstOrDefault(s => s.IsConnected) is { } s ? s.Version.ToString() : "unknown";

    private static Dictionary<string, string> PeerVersions() => new()
    {
        ["RedisRateLimiting"] = Version(typeof(PeerSlidingWindow)),
        ["RedLock.net"] = Version(typeof(RedLockFactory)),
        ["DistributedLock.Redis"] = Version(typeof(RedisDistributedLock)),
        ["FusionCache"] = Version(typeof(FusionCache)),
        ["StackExchange.Redis"] = Version(typeof(ConnectionMultiplexer)),
        [".NET"] = Environment.Version.ToString(),
    };

    private static string Version(Type t)
    {
        var info = t.Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion;
        return (info ?? t.Assembly.GetName().Version?.ToString() ?? "?").Split('+')[0];
    }

    private static string[] KeyNames(string prefix, int count = Keys) => Enumerable.Range(0, count).Select(i => $"{prefix}{i}").ToArray();

    private static IEnumerable<T> Rotate<T>(IReadOnlyList<T> items, int by) => items.Skip(by % items.Count).Concat(items.Take(by % items.Count));

    /// <summary>
    /// Runs <paramref name="callers"/> loops of <paramref name="op"/> for a short warm-up, then for <paramref name="duration"/>:
    /// successful calls per second, refused calls, and (with <paramref name="timed"/>) each call's latency percentiles.
    /// </summary>
    private static async Task<Sample> MeasureAsync(int callers, TimeSpan duration, Func<Task<bool>> op, bool timed = false)
    {
        await Loop(TimeSpan.FromMilliseconds(300), false);
        return await Loop(duration, timed);

        async Task<Sample> Loop(TimeSpan length, bool time)
        {
            using var self = Process.GetCurrentProcess();
            var redisCpu0 = await RedisCpuSecondsAsync();
            var clientCpu0 = self.TotalProcessorTime;
            var end = Stopwatch.GetTimestamp() + (long)(length.TotalSeconds * Stopwatch.Frequency);
            var started = Stopwatch.GetTimestamp();
            var results = await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
            {
                long ok = 0, failed = 0;
                var latencies = time ? new List<long>(8192) : null;
                while (Stopwatch.GetTimestamp() < end)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    var success = await op().ConfigureAwait(false);
                    latencies?.Add(Stopwatch.GetTimestamp() - t0);
                    if (success) ok++;
                    else failed++;
                }
                return (ok, failed, latencies);
            })));
            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            self.Refresh();
            var clientCpu = (self.TotalProcessorTime - clientCpu0).TotalMicroseconds;
            var redisCpu = (await RedisCpuSecondsAsync() - redisCpu0) * 1e6;
            var okTotal = Math.Max(1, results.Sum(r => r.ok));
            var perSecond = results.Sum(r => r.ok) / elapsed;
            var failedTotal = results.Sum(r => r.failed);
            var cpu = (Client: clientCpu / okTotal, Redis: redisCpu / okTotal);
            if (!time) return new Sample(perSecond, failedTotal) { ClientUs = cpu.Client, RedisUs = cpu.Redis };
            var all = results.SelectMany(r => r.latencies!).ToArray();
            Array.Sort(all);
            double Pct(double p) => all.Length == 0 ? double.NaN : all[Math.Min(all.Length - 1, (int)(p * all.Length))] * 1000.0 / Stopwatch.Frequency;
            return new Sample(perSecond, failedTotal, Pct(0.50), Pct(0.99)) { ClientUs = cpu.Client, RedisUs = cpu.Redis };
        }
    }

    /// <summary>Runs <paramref name="hit"/> over the keys on one dedicated thread (memory hits complete synchronously and would starve a pool loop).</summary>
    private static Sample DedicatedThreadLoop(TimeSpan duration, Func<int, string?> hit)
    {
        double result = 0;
        var thread = new Thread(() =>
        {
            Run(TimeSpan.FromMilliseconds(300));
            result = Run(duration);
        }) { IsBackground = true };
        thread.Start();
        thread.Join();
        return new Sample(result);

        double Run(TimeSpan length)
        {
            var start = Stopwatch.GetTimestamp();
            var end = start + (long)(length.TotalSeconds * Stopwatch.Frequency);
            long n = 0;
            while (Stopwatch.GetTimestamp() < end)
            {
                for (var i = 0; i < Keys; i++)
                    if (hit(i) is null) throw new InvalidOperationException("a cache hit returned nothing");
                n += Keys;
            }
            return n / Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
    }

    /// <summary>One area's rows, run round by round in rotated order, every round printed as it ends.</summary>
    private sealed class Interleaved(string area)
    {
        private readonly List<(string Name, string Unit, string Note, Func<Task<Sample>> Run)> _rows = [];
        private readonly Dictionary<string, List<Sample>> _samples = [];

        public Interleaved Add(string name, string unit, string note, Func<Task<Sample>> run)
        {
            _rows.Add((name, unit, note, run));
            return this;
        }

        /// <summary>A warm-up round (not recorded: JIT tiering and thread-pool growth favour no one), then the rounds.</summary>
        public async Task<List<Row>> RunAsync(int rounds, CancellationToken ct)
        {
            foreach (var row in _rows)
            {
                ct.ThrowIfCancellationRequested();
                await row.Run();
            }
            for (var round = 1; round <= rounds; round++)
            {
                var line = new List<string>();
                // The order rotates every round, so what runs just before (a peer that grew the thread pool, a
                // burst of expiring keys) favours no implementation systematically.
                foreach (var row in Rotate(_rows, round))
                {
                    ct.ThrowIfCancellationRequested();
                    var sample = await row.Run();
                    if (!_samples.TryGetValue(row.Name, out var list)) _samples[row.Name] = list = [];
                    list.Add(sample);
                    line.Add($"{row.Name} {Fmt(sample.PerSecond)}" + (double.IsFinite(sample.P99Ms) ? $" (p99 {sample.P99Ms:0.00} ms)" : "")
                        + (double.IsFinite(sample.ClientUs) ? $" [cpu {sample.ClientUs:0.0}+{sample.RedisUs:0.0} us]" : "")
                        + (sample.Failed > 0 ? $" [{sample.Failed:N0} refused]" : ""));
                }
                CommonOptions.Error.MarkupLine(Markup.Escape($"{area} round {round}/{rounds}: {string.Join(", ", line)}"));
            }
            return [.. _rows.Select(r => new Row(area, r.Name, r.Unit, r.Note, _samples[r.Name]))];
        }
    }

    private sealed class Bench(IConnectionMultiplexer redis, ConnectionMultiplexer concrete, IConnectionMultiplexer admin, ConfigurationOptions options, string prefix, TimeSpan duration, CancellationToken ct)
    {
        // ------------------------------------------------------------------ limiter

        private double _decisionsPerCall = 1; // Polystore's at 64 callers, from INFO commandstats (the batched ceiling uses it)

        public async Task<List<Row>> LimiterAsync(int rounds)
        {
            var area = new Interleaved("limiter");
            // Every decision goes to Redis, as the peer's do: denials are not remembered in the process (RememberDenialsFor
            // = 0), so these rows compare the Redis path alone; the service bench shows what remembering them is worth.
            var polystore = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
            {
                PermitLimit = PermitLimit, Window = LimiterWindow, KeyPrefix = prefix + ":rl", RememberDenialsFor = TimeSpan.Zero,
            });
            var keys = KeyNames("k");
            // RedisRateLimiting as its README shows (https://github.com/cristipufu/aspnetcore-redis-rate-limiting#readme):
            // a sliding-window limiter per partition key, built as (key, options) with PermitLimit, Window and the
            // ConnectionMultiplexerFactory (what RedisRateLimitPartition.GetSlidingWindowRateLimiter builds per key).
            var peers = KeyNames(prefix + ":rrl:").Select(k => new PeerSlidingWindow(k, new PeerSlidingWindowOptions
            {
                PermitLimit = PermitLimit,
                Window = LimiterWindow,
                ConnectionMultiplexerFactory = () => redis,
            })).ToArray();
            try
            {
                foreach (var n in LimiterCallerSteps)
                {
                    var callers = n;
                    area.Add($"polystore_{n}", "decisions/s", $"TryAcquireAsync, {n} callers over 1,000 keys", () => PolystoreLimiterAsync(polystore, keys, callers));
                    area.Add($"redis_rate_limiting_{n}", "decisions/s", $"AcquireAsync(1) on the key's limiter, {n} callers over 1,000 keys", () => MeasureAsync(callers, duration, async () =>
                    {
                        using var lease = await peers[Random.Shared.Next(Keys)].AcquireAsync(1).ConfigureAwait(false);
                        return true;
                    }, timed: true));
                }
                area.Add("seed_python_64", "decisions/s", "the usual redis-py check_rate_limit (benchmarks/redis_seed_limiter.py), asyncio, 64 coroutines", PythonAsync);
                area.Add("redis_benchmark_evalsha_1_per_call", "decisions/s",
                    "redis-benchmark -c 64 -P 16, EVALSHA of the limiter script with one decision per call (not a ceiling: Polystore batches)",
                    () => RedisBenchmarkAsync(1));
                area.Add("ceiling_redis_benchmark_batched", "decisions/s",
                    "redis-benchmark -c 64 -P 16, EVALSHA of the limiter script with as many decisions per call as Polystore's 64-caller batches carried (rounded)",
                    () => RedisBenchmarkAsync(Math.Max(1, (int)Math.Round(_decisionsPerCall))));
                var rows = await area.RunAsync(rounds, ct);
                // Redis CPU per decision, from the commandstats taken around each Polystore 64-caller round.
                if (rows.FirstOrDefault(r => r.Name == "polystore_64") is { } p64)
                {
                    var cpu = p64.Samples.Select(s => s.Extra.Length > 0 ? JsonSerializer.Deserialize<CpuSample>(s.Extra)! : null).Where(c => c is not null).ToArray();
                    if (cpu.Length > 0)
                    {
                        rows.Add(new Row("limiter", "ceiling_redis_cpu", "decisions/s",
                            "one Redis core doing nothing but this script: 1e6 / (EVALSHA usec_per_call / decisions per call), INFO commandstats during each Polystore 64-caller round",
                            [.. cpu.Select(c => new Sample(1e6 / (c!.UsecPerCall / c.DecisionsPerCall), Extra: $"{c.UsecPerCall:0.0} us/call, {c.DecisionsPerCall:0.0} decisions/call"))]));
                    }
                }
                return rows;
            }
            finally
            {
                foreach (var l in peers) await l.DisposeAsync();
            }
        }

        private sealed record CpuSample(double UsecPerCall, double DecisionsPerCall);

        private async Task<Sample> PolystoreLimiterAsync(RedisSlidingWindowRateLimiter limiter, string[] keys, int callers)
        {
            var sample = await MeasureAsync(callers, duration, async () =>
            {
                await limiter.TryAcquireAsync(keys[Random.Shared.Next(Keys)]).ConfigureAwait(false);
                return true;
            }, timed: true);
            if (callers != 64) return sample;
            // A second, shorter pass between two INFO commandstats: how many decisions one EVALSHA carried, and its
            // Redis CPU. Every call started in the pass is counted and awaited, so the decisions are exact.
            var before = await CommandStatsAsync();
            var end = Stopwatch.GetTimestamp() + (long)(Math.Min(1, duration.TotalSeconds) * Stopwatch.Frequency);
            var counts = await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
            {
                long n = 0;
                while (Stopwatch.GetTimestamp() < end)
                {
                    await limiter.TryAcquireAsync(keys[Random.Shared.Next(Keys)]).ConfigureAwait(false);
                    n++;
                }
                return n;
            })));
            var after = await CommandStatsAsync();
            var decisions = counts.Sum();
            var calls = after.GetValueOrDefault("evalsha").Calls - before.GetValueOrDefault("evalsha").Calls;
            var usec = after.GetValueOrDefault("evalsha").Usec - before.GetValueOrDefault("evalsha").Usec;
            if (calls <= 0 || decisions <= 0) return sample;
            _decisionsPerCall = (double)decisions / calls;
            return sample with { Extra = JsonSerializer.Serialize(new CpuSample((double)usec / calls, _decisionsPerCall)) };
        }

        /// <summary>INFO commandstats summed over the primaries: calls and usec per command.</summary>
        private async Task<Dictionary<string, (long Calls, long Usec)>> CommandStatsAsync()
        {
            var stats = new Dictionary<string, (long Calls, long Usec)>();
            foreach (var server in admin.GetServers().Where(s => !s.IsReplica && s.IsConnected))
            {
                var text = (string?)await server.ExecuteAsync("INFO", "commandstats") ?? "";
                foreach (var line in text.Split('\n'))
                {
                    if (!line.StartsWith("cmdstat_", StringComparison.Ordinal)) continue;
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    var name = line[8..colon];
                    long calls = 0, usec = 0;
                    foreach (var part in line[(colon + 1)..].Trim().Split(','))
                    {
                        var kv = part.Split('=');
                        if (kv[0] == "calls") calls = long.Parse(kv[1], CultureInfo.InvariantCulture);
                        else if (kv[0] == "usec") usec = long.Parse(kv[1], CultureInfo.InvariantCulture);
                    }
                    var old = stats.GetValueOrDefault(name);
                    stats[name] = (old.Calls + calls, old.Usec + usec);
                }
            }
            return stats;
        }

        private (string Host, int Port) Endpoint() => options.EndPoints[0] switch
        {
            System.Net.DnsEndPoint d => (d.Host, d.Port),
            System.Net.IPEndPoint ip => (ip.Address.ToString(), ip.Port),
            var e => throw new InvalidOperationException($"unsupported endpoint {e}"),
        };

        private async Task<Sample> PythonAsync()
        {
            var script = Path.Combine(FindRepoRoot() ?? ".", "benchmarks", "redis_seed_limiter.py");
            var python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
            if (!File.Exists(script)) return new Sample(double.NaN, Extra: "skipped: benchmarks/redis_seed_limiter.py not found (run from the checkout)");
            var (host, port) = Endpoint();
            var env = new Dictionary<string, string>
            {
                ["REDIS_HOST"] = host, ["REDIS_PORT"] = port.ToString(CultureInfo.InvariantCulture), ["REDIS_PASSWORD"] = options.Password ?? "",
                ["BENCH_SECONDS"] = duration.TotalSeconds.ToString(CultureInfo.InvariantCulture), ["BENCH_PREFIX"] = prefix + ":py",
                ["BENCH_CALLERS"] = PythonCallers.ToString(CultureInfo.InvariantCulture),
            };
            var run = await RunAsync(python, [script], env, ct);
            if (run.ExitCode != 0)
            {
                var why = run.Error.Contains("No module named 'redis'", StringComparison.Ordinal)
                    ? "skipped: redis-py missing; install with: apt-get install -y python3-redis"
                    : "failed: " + Polystore.Core.Redactor.Redact(run.Error.Trim().Split('\n')[^1], [options.Password]);
                return new Sample(double.NaN, Extra: why);
            }
            using var doc = JsonDocument.Parse(run.Output);
            var root = doc.RootElement;
            return new Sample(root.GetProperty("decisions_per_s").GetDouble(), 0, root.GetProperty("p50_ms").GetDouble(), root.GetProperty("p99_ms").GetDouble());
        }

        /// <summary>redis-benchmark -c 64 -P 16 running EVALSHA of the limiter's script with <paramref name="perCall"/> decisions per call.</summary>
        private async Task<Sample> RedisBenchmarkAsync(int perCall)
        {
            var (host, port) = Endpoint();
            var requests = Math.Max(1000, (int)(100_000 * duration.TotalSeconds / perCall));
            List<string> args = ["-h", host, "-p", port.ToString(CultureInfo.InvariantCulture), "-c", "64", "-P", "16", "-n", requests.ToString(CultureInfo.InvariantCulture),
                "-r", Keys.ToString(CultureInfo.InvariantCulture), "--csv", "EVALSHA", RedisSlidingWindowRateLimiter.Script.Sha1Hex, perCall.ToString(CultureInfo.InvariantCulture)];
            // Every __rand_int__ is drawn on its own, so each decision of a call is on a random key of the 1,000.
            for (var i = 0; i < perCall; i++) args.Add($"{{{prefix}:rb:__rand_int__}}:log");
            args.Add(((long)LimiterWindow.TotalMicroseconds).ToString(CultureInfo.InvariantCulture));
            args.Add(PermitLimit.ToString(CultureInfo.InvariantCulture));
            for (var i = 0; i < perCall; i++) args.Add("1");
            // redis-benchmark takes the password only as -a; it is never printed (errors are redacted).
            if (options.Password is { Length: > 0 } pw) args.InsertRange(0, ["-a", pw]);
            // The script must be cached on the server: EVALSHA answers NOSCRIPT otherwise.
            foreach (var server in admin.GetServers().Where(s => !s.IsReplica && s.IsConnected))
                await server.ScriptLoadAsync(RedisSlidingWindowRateLimiter.Script.Source);
            var run = await RunAsync("redis-benchmark", args, new(), ct);
            var line = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith("\"EVALSHA", StringComparison.Ordinal));
            if (run.ExitCode != 0 || line is null)
                return new Sample(double.NaN, Extra: "failed: " + Polystore.Core.Redactor.Redact((run.Error + run.Output).Trim(), [options.Password]));
            var fields = line.Split("\",\"");
            var rps = double.Parse(fields[1].Trim('"'), CultureInfo.InvariantCulture);
            // --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
            var p50 = fields.Length > 4 ? double.Parse(fields[4].Trim('"'), CultureInfo.InvariantCulture) : double.NaN;
            var p99 = fields.Length > 6 ? double.Parse(fields[6].Trim('"'), CultureInfo.InvariantCulture) : double.NaN;
            return new Sample(rps * perCall, 0, p50, p99, Extra: $"{perCall} decisions/call");
        }

        // ------------------------------------------------------------------ lock

        public async Task<List<Row>> LockAsync(int rounds)
        {
            var resources = KeyNames("r");
            var plain = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = prefix + ":lk", Expiry = LockExpiry });
            var extended = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = prefix + ":lx", Expiry = LockExpiry, AutoExtend = true });
            // RedLock.net as its README shows (https://github.com/samcook/RedLock.net#usage): a factory over the existing
            // multiplexer, CreateLockAsync(resource, expiry), disposed to release. One attempt, like the others: its
            // default retries a refused acquire 3 times with random sleeps up to 400 ms. It always auto-extends: a
            // held lock starts a timer at expiry / 2 (there is no switch to turn it off).
            using var redLock = RedLockFactory.Create(new List<RedLockMultiplexer> { new(concrete) }, new RedLockRetryConfiguration(retryCount: 1));
            var redLockNames = KeyNames(prefix + ":redlock:");
            // DistributedLock.Redis as its docs show (https://github.com/madelson/DistributedLock/blob/master/docs/DistributedLock.Redis.md):
            // new RedisDistributedLock(name, database), TryAcquireAsync() (one attempt), disposed to release. It always
            // auto-extends: every handle runs a lease monitor (default cadence a third of the 27 s minimum validity).
            var db = redis.GetDatabase();
            var medallionNames = KeyNames(prefix + ":dl:");
            var area = new Interleaved("lock")
                .Add("polystore", "pairs/s", "TryAcquireAsync + awaited ReleaseAsync, no auto-extension (the peers always auto-extend)",
                    () => MeasureAsync(LockCallers, duration, async () =>
                    {
                        var held = await plain.TryAcquireAsync(resources[Random.Shared.Next(Keys)]).ConfigureAwait(false);
                        return held is not null && await held.ReleaseAsync().ConfigureAwait(false);
                    }))
                .Add("polystore_autoextend", "pairs/s", "TryAcquireAsync + awaited ReleaseAsync, AutoExtend on (every expiry / 3)",
                    () => MeasureAsync(LockCallers, duration, async () =>
                    {
                        var held = await extended.TryAcquireAsync(resources[Random.Shared.Next(Keys)]).ConfigureAwait(false);
                        return held is not null && await held.ReleaseAsync().ConfigureAwait(false);
                    }))
                .Add("redlock_net", "pairs/s", "CreateLockAsync + awaited DisposeAsync, RedLockRetryConfiguration(retryCount: 1), auto-extends (always)",
                    () => MeasureAsync(LockCallers, duration, async () =>
                    {
                        // RedLock.net 2.3 is IAsyncDisposable: its synchronous Dispose blocks a pool thread on the release.
                        await using var held = await redLock.CreateLockAsync(redLockNames[Random.Shared.Next(Keys)], LockExpiry).ConfigureAwait(false);
                        return held.IsAcquired;
                    }))
                .Add("distributed_lock_redis", "pairs/s", "TryAcquireAsync + awaited DisposeAsync, auto-extends (always)",
                    () => MeasureAsync(LockCallers, duration, async () =>
                    {
                        await using var held = await new RedisDistributedLock(medallionNames[Random.Shared.Next(Keys)], db).TryAcquireAsync().ConfigureAwait(false);
                        return held is not null;
                    }));
            return await area.RunAsync(rounds, ct);
        }

        // ------------------------------------------------------------------ cache

        // FusionCache with Redis as L2, as its docs show (https://github.com/ZiggyCreatures/FusionCache/blob/main/docs/CacheLevels.md):
        // a RedisCache from Microsoft.Extensions.Caching.StackExchangeRedis over the same multiplexer and a serializer; and,
        // for its recommended multi-node setup, the Redis backplane too (https://github.com/ZiggyCreatures/FusionCache/blob/main/docs/Backplane.md).
        // Each FusionCache gets a multiplexer of its own (one, shared by its distributed cache and its backplane, as
        // Polystore's cache uses one), never the bench's: RedisCache.Dispose disposes the multiplexer its factory
        // returned, even one it did not create, which left every later row and the clean-up on a disposed connection.
        private async Task<FusionCache> FusionAsync(string name, bool backplane, List<IConnectionMultiplexer> owned)
        {
            var own = await ConnectionMultiplexer.ConnectAsync(options);
            owned.Add(own);
            var fc = new FusionCache(new FusionCacheOptions { CacheName = prefix + ":" + name });
            fc.SetupDistributedCache(
                new Microsoft.Extensions.Caching.StackExchangeRedis.RedisCache(new Microsoft.Extensions.Caching.StackExchangeRedis.RedisCacheOptions { ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(own), InstanceName = prefix + ":" + name + ":" }),
                new FusionCacheSystemTextJsonSerializer());
            if (backplane) fc.SetupBackplane(new RedisBackplane(new RedisBackplaneOptions { ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(own) }));
            return fc;
        }

        private static async Task DisposeAllAsync(List<IConnectionMultiplexer> owned)
        {
            foreach (var m in owned) await m.DisposeAsync();
        }

        private static readonly FusionCacheEntryOptions FusionDefaults = new() { Duration = TimeSpan.FromMinutes(10) };
        private static readonly FusionCacheEntryOptions FusionL2Only = new() { Duration = TimeSpan.FromMinutes(10), SkipMemoryCacheRead = true, SkipMemoryCacheWrite = true };

        public async Task<List<Row>> CacheAsync(int rounds)
        {
            var rows = new List<Row>();
            var keys = KeyNames("user:");
            var items = KeyNames("item:");
            await using var oursL1 = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":pc", UseL1 = true, DefaultTtl = TimeSpan.FromMinutes(10), L1Ttl = TimeSpan.FromMinutes(10) });
            await using var oursL2 = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":pc2", DefaultTtl = TimeSpan.FromMinutes(10) });
            var owned = new List<IConnectionMultiplexer>();
            try
            {
                using var fcL2 = await FusionAsync("fc", backplane: false, owned);
                using var fcMemory = new FusionCache(new FusionCacheOptions { CacheName = prefix + ":fcm" });
                using var fcRecommended = await FusionAsync("fcr", backplane: true, owned);
                await CacheRowsAsync(rounds, rows, keys, items, oursL1, oursL2, fcL2, fcMemory, fcRecommended);
            }
            finally
            {
                await DisposeAllAsync(owned); // after the caches that used them
            }
            rows.AddRange(await StampedeAsync());
            return rows;
        }

        private async Task CacheRowsAsync(int rounds, List<Row> rows, string[] keys, string[] items, RedisTieredCache oursL1, RedisTieredCache oursL2, FusionCache fcL2, FusionCache fcMemory, FusionCache fcRecommended)
        {
            foreach (var k in keys)
            {
                await oursL1.GetOrSetAsync(k, _ => Task.FromResult<string?>("value of " + k));
                await fcL2.GetOrSetAsync<string>(k, (_, _) => Task.FromResult("value of " + k), default, FusionDefaults);
                await fcMemory.GetOrSetAsync<string>(k, (_, _) => Task.FromResult("value of " + k), default, FusionDefaults);
                await fcRecommended.GetOrSetAsync<string>(k, (_, _) => Task.FromResult("value of " + k), default, FusionDefaults);
            }
            foreach (var k in items)
            {
                await oursL2.GetOrSetAsync(k, _ => Task.FromResult<string?>("value of " + k));
                await fcL2.GetOrSetAsync<string>(k, (_, _) => Task.FromResult("value of " + k), default, FusionL2Only);
            }
            // Memory hits complete synchronously: timed on a dedicated thread, never on the thread pool. The factories
            // are static lambdas (no closure per call); FusionCache's through its (ctx, ct) overload, which its own
            // Func<CancellationToken, ...> overload wraps in a new closure on every call.
            rows.AddRange(await new Interleaved("cache_l1")
                .Add("polystore", "hits/s", "GetOrSetAsync, one dedicated thread, L1 + Redis L2 with pub/sub invalidation",
                    () => Task.FromResult(DedicatedThreadLoop(duration, i => oursL1.GetOrSetAsync(keys[i], static _ => Task.FromResult<string?>("miss")).GetAwaiter().GetResult())))
                .Add("fusioncache", "hits/s", "GetOrSetAsync((ctx, ct) factory), one dedicated thread, memory + Redis L2",
                    () => Task.FromResult(DedicatedThreadLoop(duration, i => fcL2.GetOrSetAsync<string>(keys[i], static (_, _) => Task.FromResult("miss"), default, FusionDefaults).GetAwaiter().GetResult())))
                .Add("fusioncache_memory_only", "hits/s", "GetOrSetAsync((ctx, ct) factory), one dedicated thread, memory only (no L2)",
                    () => Task.FromResult(DedicatedThreadLoop(duration, i => fcMemory.GetOrSetAsync<string>(keys[i], static (_, _) => Task.FromResult("miss"), default, FusionDefaults).GetAwaiter().GetResult())))
                .RunAsync(rounds, ct));
            rows.AddRange(await new Interleaved("cache_l2")
                .Add("polystore", "hits/s", "GetOrSetAsync, no L1, 64 callers over 1,000 keys",
                    () => MeasureAsync(CacheCallers, duration, async () =>
                        await oursL2.GetOrSetAsync(items[Random.Shared.Next(Keys)], static _ => Task.FromResult<string?>(null)).ConfigureAwait(false) is not null))
                .Add("fusioncache_l2_only", "hits/s", "SkipMemoryCacheRead/Write, 64 callers over 1,000 keys: not FusionCache's recommended setup (see cache_recommended)",
                    () => MeasureAsync(CacheCallers, duration, async () =>
                        await fcL2.GetOrSetAsync<string>(items[Random.Shared.Next(Keys)], static (_, _) => Task.FromResult<string>(null!), default, FusionL2Only).ConfigureAwait(false) is not null))
                .RunAsync(rounds, ct));
            rows.AddRange(await new Interleaved("cache_recommended")
                .Add("polystore", "hits/s", "UseL1 (L1 + Redis L2, pub/sub invalidation), 64 callers over 1,000 keys",
                    () => MeasureAsync(CacheCallers, duration, async () =>
                        await oursL1.GetOrSetAsync(keys[Random.Shared.Next(Keys)], static _ => Task.FromResult<string?>(null)).ConfigureAwait(false) is not null))
                .Add("fusioncache", "hits/s", "FusionCache's recommended setup: memory + Redis L2 + Redis backplane, 64 callers over 1,000 keys",
                    () => MeasureAsync(CacheCallers, duration, async () =>
                        await fcRecommended.GetOrSetAsync<string>(keys[Random.Shared.Next(Keys)], static (_, _) => Task.FromResult<string>(null!), default, FusionDefaults).ConfigureAwait(false) is not null))
                .RunAsync(rounds, ct));
        }

        private async Task<Row[]> StampedeAsync()
        {
            await using var ours = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":ps", UseL1 = true, DefaultTtl = TimeSpan.FromMinutes(10) });
            var owned = new List<IConnectionMultiplexer>();
            try
            {
                using var fc = await FusionAsync("fcs", backplane: true, owned);
                return await StampedeRowsAsync(ours, fc);
            }
            finally
            {
                await DisposeAllAsync(owned);
            }
        }

        private static async Task<Row[]> StampedeRowsAsync(RedisTieredCache ours, FusionCache fc)
        {
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
                await fc.GetOrSetAsync<string>("stampede", async (_, _) => { Interlocked.Increment(ref fusionCalls); await Task.Delay(50); return "v"; }, default, FusionDefaults);
            }))).ToArray();
            gate.SetResult();
            await Task.WhenAll(tasks);
            return
            [
                new("cache_stampede", "polystore", "factory calls", "1,000 callers, one missing key", [new Sample(oursCalls)]),
                new("cache_stampede", "fusioncache", "factory calls", "1,000 callers, one missing key (recommended setup)", [new Sample(fusionCalls)]),
            ];
        }

        // ------------------------------------------------------------------ scale

        /// <summary>
        /// The limiter over 1,000, 10,000, ... keys: every key first gets one decision (so it exists), then decisions/s on
        /// random keys among them; memory per key is Redis's used_memory growth over the fill, divided by the keys.
        /// A one-minute window keeps the keys alive while measured. Every decision must come from Redis: the limiter
        /// throws instead of answering from its failure mode, a decision without a server time is counted as failed,
        /// and a step whose keys are not all in Redis after the fill, or whose measured loop sent no EVALSHA, has no figure.
        /// </summary>
        public async Task<List<Row>> ScaleAsync(int maxKeys)
        {
            var rows = new List<Row>();
            for (var n = 1000; n <= maxKeys; n *= 10)
            {
                var count = n;
                var step = $"{prefix}:sc{n}";
                var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions
                {
                    PermitLimit = PermitLimit, Window = TimeSpan.FromMinutes(1), KeyPrefix = step, OnRedisFailure = RedisFailureMode.Throw,
                    RememberDenialsFor = TimeSpan.Zero, // every decision is a script call: these rows measure Redis
                });
                var names = KeyNames("s", count);
                string? firstError = null;
                long failed = 0;
                // True only for a decision Redis took (a fallback has no server time; Throw makes failures exceptions).
                async Task<bool> DecideAsync(string key)
                {
                    try
                    {
                        var d = await limiter.TryAcquireAsync(key).ConfigureAwait(false);
                        if (d.ServerTimeMicroseconds > 0 && !d.IsFallback) return true;
                        Interlocked.CompareExchange(ref firstError, "a decision answered without Redis", null);
                    }
                    catch (Exception e) when (e is RedisException or TimeoutException)
                    {
                        Interlocked.CompareExchange(ref firstError, e.Message.Split('\n')[0], null);
                    }
                    Interlocked.Increment(ref failed);
                    return false;
                }
                var before = await UsedMemoryAsync();
                var next = -1;
                var fillStarted = Stopwatch.GetTimestamp();
                await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
                {
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < count)
                        await DecideAsync(names[i]).ConfigureAwait(false);
                })));
                var fillRate = count / Stopwatch.GetElapsedTime(fillStarted).TotalSeconds;
                var after = await UsedMemoryAsync();
                var fillFailed = Interlocked.Exchange(ref failed, 0);
                var stored = await CountKeysAsync(step);
                var callsBefore = (await CommandStatsAsync()).GetValueOrDefault("evalsha").Calls;
                var sample = await MeasureAsync(64, duration, () => DecideAsync(names[Random.Shared.Next(count)]), timed: true);
                var calls = (await CommandStatsAsync()).GetValueOrDefault("evalsha").Calls - callsBefore;
                var perKey = (double)(after - before) / count;
                var note = $"{count:N0} keys, 64 callers, random keys, OnRedisFailure = Throw; {perKey:N0} bytes of Redis memory per key; "
                    + $"first decision on every key at {fillRate:N0}/s ({stored:N0} keys in Redis after it, {fillFailed:N0} failed)";
                string? invalid = null;
                if (stored < count) invalid = $"failed: {stored:N0} of {count:N0} keys in Redis after the fill ({fillFailed:N0} decisions failed{(firstError is null ? "" : ": " + firstError)})";
                else if (calls <= 0) invalid = "failed: no EVALSHA reached Redis during the measured loop";
                var extra = invalid ?? $"{perKey:0} bytes/key, {calls:N0} EVALSHA calls" + (firstError is null ? "" : $", first failure: {firstError}");
                rows.Add(new Row("scale", $"keys_{count}", "decisions/s", note,
                    [invalid is null ? sample with { Extra = extra } : new Sample(double.NaN, sample.Failed + fillFailed, Extra: extra)]));
                CommonOptions.Error.MarkupLine(Markup.Escape($"scale {count:N0} keys: {sample.PerSecond:N0} decisions/s (p99 {sample.P99Ms:0.00} ms, {sample.Failed:N0} failed), {perKey:N0} bytes/key, {stored:N0} keys stored, {calls:N0} EVALSHA{(invalid is null ? "" : "; " + invalid)}"));
                await CleanUpAsync(redis, step);
            }
            return rows;
        }

        /// <summary>Keys under <paramref name="keyPrefix"/> on the primaries (SCAN; the limiter's keys are <c>{prefix:key}:log</c>).</summary>
        private async Task<long> CountKeysAsync(string keyPrefix)
        {
            long total = 0;
            foreach (var server in admin.GetServers().Where(s => !s.IsReplica && s.IsConnected))
                await foreach (var _ in server.KeysAsync(options.DefaultDatabase ?? 0, "{" + keyPrefix + "*", 10_000)) total++;
            return total;
        }

        private async Task<long> UsedMemoryAsync()
        {
            long total = 0;
            foreach (var server in admin.GetServers().Where(s => !s.IsReplica && s.IsConnected))
            {
                var text = (string?)await server.ExecuteAsync("INFO", "memory") ?? "";
                var line = text.Split('\n').First(l => l.StartsWith("used_memory:", StringComparison.Ordinal));
                total += long.Parse(line["used_memory:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
            return total;
        }
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
