using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Polystore.Cli;
using Spectre.Console;

namespace Polystore.Bench;

/// <summary>
/// <c>polystore-bench service</c>: the users service under HTTP load from wrk on loopback. Profile reads through four
/// profile caches (Polystore's, none, IDistributedCache over Redis, FusionCache L1+L2), then the API's rate limiter
/// (Polystore's against RedisRateLimiting) with the admitted requests per key checked against the limit. The service
/// runs as the bench host (benchmarks/Polystore.Bench.ServiceHost), one process per configuration.
/// </summary>
internal static class BenchServiceCommand
{
    private const string Schema = "bench_service";
    private const int LimiterKeys = 4;

    private static readonly Option<double> Seconds = new("--seconds") { Description = "Measured seconds per row and round (default 8).", DefaultValueFactory = _ => 8 };

    private static readonly Option<int> Rounds = new("--rounds") { Description = "Interleaved rounds; medians are reported (default 3).", DefaultValueFactory = _ => 3 };

    private static readonly Option<int> Connections = new("--connections") { Description = "wrk connections, the same for every row (default 64).", DefaultValueFactory = _ => 64 };

    private static readonly Option<int> Users = new("--users") { Description = "Users created and read in turn (default 1,000).", DefaultValueFactory = _ => 1000 };

    private static readonly Option<int> PermitLimit = new("--permit-limit") { Description = "The limiter rows' permits per key and window (the window outlasts a round). Default: a tenth of the requests a key gets in a round at the slowest cached profile round's rate, so keys see admissions and rejections." };

    private static readonly Option<string?> Host = new("--host") { Description = "The bench host's dll (default: benchmarks/Polystore.Bench.ServiceHost's Release build, or $POLYSTORE_BENCH_SERVICE_HOST).", HelpName = "PATH" };

    /// <summary>One wrk run: requests/s, p50 and p99 in milliseconds, responses that were not 2xx, socket errors.</summary>
    private sealed record WrkRun(double Rps, double P50Ms, double P99Ms, long Non2xx, long SocketErrors);

    /// <summary>A row: the configuration's rounds (in round order) and their medians.</summary>
    private sealed record Row(string Name, string Setup, IReadOnlyList<WrkRun> Rounds)
    {
        public double Rps => Median(Rounds.Select(r => r.Rps));
        public double P50Ms => Median(Rounds.Select(r => r.P50Ms));
        public double P99Ms => Median(Rounds.Select(r => r.P99Ms));
    }

    /// <summary>One limiter round's responses per key: admitted and rejected, against the limit.</summary>
    private sealed record KeyCount(long Admitted, long Rejected, long Other);

    private static readonly (string Name, string Setting, string Setup)[] ProfileRows =
    [
        ("polystore", "polystore", "Polystore ReadModelCache as the service ships it: 10 s local copies dropped by the projection's invalidation, then Redis with its version floor"),
        ("uncached", "uncached", "the read model from PostgreSQL on every request"),
        ("distributed_cache", "distributed", "IDistributedCache: AddStackExchangeRedisCache, cache-aside"),
        ("fusion_cache", "fusion", "FusionCache 2.9.0: memory L1 + Redis L2 + Redis backplane"),
    ];

    private static readonly (string Name, string Setting, string Setup, string[] Extra)[] LimiterRows =
    [
        ("polystore", "polystore", "AddPolystoreSlidingWindowPolicy, what the service ships (a key over its limit is denied in the process until its window frees a request, at most 1 s)", []),
        // The same limiter asking Redis on every request: what the remembered denials are worth, shown beside it.
        ("polystore_always_ask", "polystore", "the same with RememberDenialsFor = 0: every request is a script call", ["--UsersService:RateLimit:RememberDenialsFor=00:00:00"]),
        ("redis_rate_limiting", "redis-rate-limiting", "RedisRateLimiting.AspNetCore 1.2.1 sliding window, per-key partitions", []),
    ];

    public static Command Create()
    {
        var cmd = new Command("service", """
            The users service (samples/UsersService) under HTTP load from wrk on loopback, the same connections and
            seconds per row, in interleaved rounds whose order rotates; medians of the rounds, every round shown:
              profile  GET /users/{id}/profile over pre-created, projected users with four profile caches:
                       Polystore's, uncached, IDistributedCache over Redis, FusionCache L1+L2 (the API's rate
                       limiter off, so the rows differ in the cache only);
              limiter  the same endpoint behind Polystore's limiter (as shipped, and asking Redis on every request)
                       and RedisRateLimiting's (same limit, window and per-key partitions, 4 keys), and per key the
                       admitted requests against the limit.
            --json prints rows, rounds and a 'ratios' object with the targets.
            """) { Seconds, Rounds, Connections, Users, PermitLimit, Host };
        cmd.SetAction(async (parse, ct) =>
        {
            var json = parse.GetValue(CommonOptions.Json);
            var seconds = Math.Clamp(parse.GetValue(Seconds), 1, 120);
            var rounds = Math.Clamp(parse.GetValue(Rounds), 1, 15);
            var connections = Math.Clamp(parse.GetValue(Connections), 1, 1024);
            var userCount = Math.Clamp(parse.GetValue(Users), 1, 100_000);
            var givenLimit = parse.GetValue(PermitLimit);
            if (FindOnPath("wrk") is not { } wrk)
            {
                CommonOptions.Error.MarkupLine("[red]wrk is not installed[/] (./run bench service installs it; else apt-get install wrk)");
                return ExitCodes.InvalidConfig;
            }
            if (FindHost(parse.GetValue(Host)) is not { } hostDll)
            {
                CommonOptions.Error.MarkupLine("[red]the bench host is not built[/]: dotnet build benchmarks/Polystore.Bench.ServiceHost -c Release (./run bench service does), or pass --host");
                return ExitCodes.InvalidConfig;
            }
            var work = Directory.CreateTempSubdirectory("polystore-bench-service-");
            try
            {
                var bench = new ServiceBench(wrk, hostDll, work.FullName, seconds, connections);
                var run = Guid.NewGuid().ToString("N")[..8];
                Row[] profile = [];
                Row[] limiter = [];
                Dictionary<string, List<Dictionary<string, KeyCount>>> counts = [];
                var permitLimit = 0;
                await CommonOptions.Error.Status().StartAsync("bench service", async status =>
                {
                    profile = await bench.ProfileAsync(run, userCount, rounds, status, ct);
                    // A tenth of what a key gets in a round at the slowest cached round's rate: limited even when
                    // a noisy machine slows the limiter rows several times over.
                    permitLimit = givenLimit > 0 ? givenLimit
                        : (int)Math.Max(5, profile.Single(r => r.Name == "polystore").Rounds.Min(r => r.Rps) * seconds / LimiterKeys / 10);
                    (limiter, counts) = await bench.LimiterAsync(run, rounds, permitLimit, status, ct);
                });
                Print(json, profile, limiter, counts, permitLimit, seconds, connections, rounds, userCount);
                return ExitCodes.Ok;
            }
            catch (BenchServiceException e)
            {
                CommonOptions.Error.MarkupLineInterpolated($"[red]bench service: {e.Message}[/]");
                return ExitCodes.Failure;
            }
            finally
            {
                work.Delete(recursive: true);
            }
        });
        return cmd;
    }

    private static void Print(bool json, Row[] profile, Row[] limiter, Dictionary<string, List<Dictionary<string, KeyCount>>> counts,
        int permitLimit, double seconds, int connections, int rounds, int users)
    {
        Row P(string name) => profile.Single(r => r.Name == name);
        Row L(string name) => limiter.Single(r => r.Name == name);
        List<double> Rps(Row row) => [.. row.Rounds.Select(r => r.Rps)];
        List<double> P99(Row row) => [.. row.Rounds.Select(r => r.P99Ms)];
        var exact = counts.ToDictionary(kv => kv.Key, kv => kv.Value.All(round => round.Count == LimiterKeys && round.Values.All(c => c.Admitted == permitLimit && c.Other == 0)));
        // A row without a figure (a failed run) gives no ratio rather than an infinity JSON cannot carry.
        static BenchRatio Finite(BenchRatio r) => double.IsFinite(r.Value) && (r.Rounds ?? []).All(double.IsFinite)
            ? r : r with { Value = double.IsFinite(r.Value) ? r.Value : 0, Rounds = r.Rounds?.Select(x => double.IsFinite(x) ? x : 0).ToList(), Met = double.IsFinite(r.Value) && r.Met == true };
        var ratios = new Dictionary<string, object>
        {
            ["cached_vs_uncached_rps"] = Finite(BenchRatio.Of(P("polystore").Rps, P("uncached").Rps, Rps(P("polystore")), Rps(P("uncached"))).WithTarget(3).Rounded(2)),
            ["cached_vs_uncached_p99"] = Finite(BenchRatio.Of(P("polystore").P99Ms, P("uncached").P99Ms, P99(P("polystore")), P99(P("uncached"))).WithTarget(0.5, atMost: true).Rounded(2)),
            ["cached_vs_distributed_cache_rps"] = Finite(BenchRatio.Of(P("polystore").Rps, P("distributed_cache").Rps, Rps(P("polystore")), Rps(P("distributed_cache"))).WithTarget(1.2).Rounded(2)),
            // No target: FusionCache's recommended setup also answers from memory, the like-for-like in-process peer.
            ["cached_vs_fusion_cache_rps"] = Finite(BenchRatio.Of(P("polystore").Rps, P("fusion_cache").Rps, Rps(P("polystore")), Rps(P("fusion_cache"))).Rounded(2)),
            ["limiter_vs_redis_rate_limiting_rps"] = Finite(BenchRatio.Of(L("polystore").Rps, L("redis_rate_limiting").Rps, Rps(L("polystore")), Rps(L("redis_rate_limiting"))).WithTarget(1.5).Rounded(2)),
            // No target: the limiter asking Redis on every request, as the peer does.
            ["limiter_always_ask_vs_redis_rate_limiting_rps"] = Finite(BenchRatio.Of(L("polystore_always_ask").Rps, L("redis_rate_limiting").Rps, Rps(L("polystore_always_ask")), Rps(L("redis_rate_limiting"))).Rounded(2)),
            ["limiter_exact_polystore"] = exact["polystore"],
            ["limiter_exact_polystore_always_ask"] = exact["polystore_always_ask"],
            ["limiter_exact_redis_rate_limiting"] = exact["redis_rate_limiting"],
        };
        if (json)
        {
            object Rows(Row[] rows) => rows.Select(r => new
            {
                name = r.Name,
                setup = r.Setup,
                rps = Math.Round(r.Rps),
                p50_ms = Math.Round(r.P50Ms, 2),
                p99_ms = Math.Round(r.P99Ms, 2),
                rounds = r.Rounds.Select(x => new { rps = Math.Round(x.Rps), p50_ms = Math.Round(x.P50Ms, 2), p99_ms = Math.Round(x.P99Ms, 2), non_2xx = x.Non2xx, socket_errors = x.SocketErrors }),
            });
            CommonOptions.WriteJson(new
            {
                bench = "service",
                load = new { tool = "wrk", connections, threads = 2, seconds, rounds, users, limiter_keys = LimiterKeys, permit_limit = permitLimit, window_s = LimiterWindow.TotalSeconds },
                profile = Rows(profile),
                limiter = Rows(limiter),
                limiter_admitted = counts.ToDictionary(kv => kv.Key, kv => kv.Value.Select(round => new
                {
                    limit = permitLimit,
                    keys = round.Count,
                    admitted_min = round.Count == 0 ? 0 : round.Values.Min(c => c.Admitted),
                    admitted_max = round.Count == 0 ? 0 : round.Values.Max(c => c.Admitted),
                    limited = round.Count > 0 && round.Values.All(c => c.Rejected > 0),
                    rejected = round.Values.Sum(c => c.Rejected),
                    other = round.Values.Sum(c => c.Other),
                })),
                ratios,
            });
            return;
        }
        string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
        Table Table(string title, Row[] rows, bool admitted)
        {
            var table = new Table().Border(TableBorder.Rounded).Title(title);
            table.AddColumn("row").AddColumn(new TableColumn("req/s").RightAligned()).AddColumn(new TableColumn("p50 ms").RightAligned())
                .AddColumn(new TableColumn("p99 ms").RightAligned()).AddColumn("rounds (req/s | p99 ms)");
            if (admitted) table.AddColumn("admitted per key vs limit, per round");
            foreach (var row in rows)
            {
                var cells = new List<string>
                {
                    Markup.Escape(row.Name), F(row.Rps, "N0"), F(row.P50Ms, "0.00"), F(row.P99Ms, "0.00"),
                    string.Join(" / ", row.Rounds.Select(r => $"{F(r.Rps, "N0")} | {F(r.P99Ms, "0.0")}")) + (row.Rounds.Sum(r => r.SocketErrors) is > 0 and var e ? $" ({e} socket errors)" : "")
                        + (!admitted && row.Rounds.Sum(r => r.Non2xx) is > 0 and var bad ? $" ({bad} not 2xx)" : ""),
                };
                if (admitted)
                    cells.Add(string.Join(" / ", counts[row.Name].Select(round => round.Count == 0 ? "-"
                        : $"{round.Values.Min(c => c.Admitted)}..{round.Values.Max(c => c.Admitted)} of {permitLimit} ({round.Values.Sum(c => c.Rejected):N0} rejected)")));
                table.AddRow(cells.ToArray());
            }
            return table;
        }
        AnsiConsole.Write(Table($"[bold]bench service: GET /users/{{id}}/profile[/] ({connections} connections, {F(seconds, "0")} s x {rounds} rounds, {users:N0} users, medians)", profile, admitted: false));
        AnsiConsole.Write(Table($"[bold]bench service: rate-limited profile reads[/] ({connections} connections, {LimiterKeys} keys, {permitLimit} per {F(LimiterWindow.TotalSeconds, "0")} s)", limiter, admitted: true));
        var ratioTable = new Table().Border(TableBorder.Rounded).AddColumn("ratio").AddColumn(new TableColumn("value").RightAligned()).AddColumn("target").AddColumn("rounds");
        foreach (var (name, value) in ratios)
        {
            if (value is BenchRatio r)
                ratioTable.AddRow(name, F(r.Value, "0.00"), $"{(r.AtMost ? "<=" : ">=")} {F(r.Target ?? 0, "0.0#")} {(r.Met == true ? "[green]met[/]" : "[red]missed[/]")}",
                    string.Join(" / ", (r.Rounds ?? []).Select(x => F(x, "0.00"))));
            else
                ratioTable.AddRow(name, value.ToString() ?? "", (bool)value ? "[green]exact[/]" : "[red]not exact[/]", "");
        }
        AnsiConsole.Write(ratioTable);
    }

    /// <summary>The limiter rows' window: longer than any round, so a key admits exactly the limit within one.</summary>
    private static readonly TimeSpan LimiterWindow = TimeSpan.FromMinutes(10);

    private sealed class ServiceBench(string wrk, string hostDll, string work, double seconds, int connections)
    {
        private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

        public async Task<Row[]> ProfileAsync(string run, int userCount, int rounds, StatusContext status, CancellationToken ct)
        {
            var hosts = new List<HostProcess>();
            try
            {
                // One host first: it creates the schema, which hosts starting together would race to do.
                status.Status("profile: starting the service hosts");
                foreach (var (name, setting, _) in ProfileRows)
                {
                    hosts.Add(await HostProcess.StartAsync(hostDll, name, [$"--Bench:ProfileCache={setting}", "--Bench:Limiter=none"], ct));
                }
                var ids = await CreateUsersAsync(hosts[0].Url, run, userCount, status, ct);
                var idFile = Path.Combine(work, "ids.txt");
                await File.WriteAllLinesAsync(idFile, ids.Select(i => i.ToString(CultureInfo.InvariantCulture)), ct);
                status.Status("profile: waiting for the projection of every user");
                var uncached = hosts[ProfileRows.ToList().FindIndex(r => r.Setting == "uncached")];
                await WaitForProjectionAsync(uncached.Url, ids, ct);
                var script = await WriteScriptAsync(ct);
                // Warm-up, not recorded: every cache filled and every host's JIT tiered before round 1.
                foreach (var host in hosts)
                {
                    status.Status($"profile: warming {host.Name}");
                    await RunWrkAsync(host.Url, script, idFile, "", Math.Max(2, seconds / 2), ct);
                }
                var samples = hosts.ToDictionary(h => h.Name, _ => new List<WrkRun>());
                for (var round = 0; round < rounds; round++)
                {
                    foreach (var host in Rotate(hosts, round))
                    {
                        status.Status($"profile: {host.Name} (round {round + 1}/{rounds})");
                        samples[host.Name].Add(Logged($"profile {host.Name} round {round + 1}", await RunWrkAsync(host.Url, script, idFile, "", seconds, ct)));
                    }
                }
                return [.. ProfileRows.Select(r => new Row(r.Name, r.Setup, samples[r.Name]))];
            }
            finally
            {
                foreach (var host in hosts) host.Dispose();
            }
        }

        public async Task<(Row[], Dictionary<string, List<Dictionary<string, KeyCount>>>)> LimiterAsync(string run, int rounds, int permitLimit, StatusContext status, CancellationToken ct)
        {
            var hosts = new List<HostProcess>();
            try
            {
                status.Status("limiter: starting the service hosts");
                foreach (var (name, setting, _, extra) in LimiterRows)
                {
                    hosts.Add(await HostProcess.StartAsync(hostDll, name,
                    [
                        "--Bench:ProfileCache=polystore", $"--Bench:Limiter={setting}", "--Bench:CountStatuses=true",
                        $"--UsersService:RateLimit:PermitLimit={permitLimit}", $"--UsersService:RateLimit:Window={LimiterWindow:c}",
                        // As the peer behaves: a Redis failure is an error (counted as other), not a fail-open admission.
                        "--UsersService:RateLimit:OnRedisFailure=Throw",
                        .. extra,
                    ], ct));
                }
                var idFile = Path.Combine(work, "ids.txt");
                var script = await WriteScriptAsync(ct);
                foreach (var host in hosts)
                {
                    status.Status($"limiter: warming {host.Name}");
                    await RunWrkAsync(host.Url, script, idFile, $"{run}-warm-{host.Name}-", Math.Max(2, seconds / 2), ct);
                }
                var samples = hosts.ToDictionary(h => h.Name, _ => new List<WrkRun>());
                var counts = hosts.ToDictionary(h => h.Name, _ => new List<Dictionary<string, KeyCount>>());
                for (var round = 0; round < rounds; round++)
                {
                    foreach (var host in Rotate(hosts, round))
                    {
                        status.Status($"limiter: {host.Name} (round {round + 1}/{rounds})");
                        // Fresh keys every round: each starts with an empty window that outlasts the round.
                        var prefix = $"{run}-r{round}-{host.Name}-";
                        samples[host.Name].Add(Logged($"limiter {host.Name} round {round + 1}", await RunWrkAsync(host.Url, script, idFile, prefix, seconds, ct)));
                        counts[host.Name].Add(await CountsAsync(host.Url, prefix, ct));
                    }
                }
                return ([.. LimiterRows.Select(r => new Row(r.Name, r.Setup, samples[r.Name]))], counts);
            }
            finally
            {
                foreach (var host in hosts) host.Dispose();
            }
        }

        /// <summary>Each round's figures on stderr as they come, so a long run that fails later still shows them.</summary>
        private static WrkRun Logged(string what, WrkRun run)
        {
            CommonOptions.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{what}: {run.Rps:F0} req/s, p50 {run.P50Ms:F2} ms, p99 {run.P99Ms:F2} ms, {run.Non2xx} not 2xx, {run.SocketErrors} socket errors"));
            return run;
        }

        private static async Task<List<long>> CreateUsersAsync(Uri url, string run, int count, StatusContext status, CancellationToken ct)
        {
            status.Status($"profile: creating {count:N0} users");
            var ids = new long[count];
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < count)
                {
                    var body = JsonSerializer.Serialize(new { email = $"u{i}-{run}@bench.test", name = $"User {i}", region = (i % 3) switch { 0 => "eu", 1 => "us", _ => "apac" } });
                    using var response = await Http.PostAsync(new Uri(url, "/users"), new StringContent(body, Encoding.UTF8, "application/json"), ct);
                    if (response.StatusCode != HttpStatusCode.Created) throw new BenchServiceException($"creating a user answered {(int)response.StatusCode}");
                    using var created = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                    ids[i] = created.RootElement.GetProperty("id").GetInt64();
                }
            }));
            return [.. ids];
        }

        private static async Task WaitForProjectionAsync(Uri url, List<long> ids, CancellationToken ct)
        {
            var pending = new Queue<long>(ids);
            var deadline = Stopwatch.StartNew();
            while (pending.Count > 0)
            {
                var id = pending.Peek();
                using var response = await Http.GetAsync(new Uri(url, $"/users/{id.ToString(CultureInfo.InvariantCulture)}/profile"), ct);
                if (response.StatusCode == HttpStatusCode.OK) { pending.Dequeue(); continue; }
                if (response.StatusCode != HttpStatusCode.NotFound) throw new BenchServiceException($"a profile read answered {(int)response.StatusCode}");
                if (deadline.Elapsed > TimeSpan.FromMinutes(3)) throw new BenchServiceException($"{pending.Count} users were not projected within 3 minutes");
                await Task.Delay(100, ct);
            }
        }

        private static async Task<Dictionary<string, KeyCount>> CountsAsync(Uri url, string prefix, CancellationToken ct)
        {
            var text = await Http.GetStringAsync(new Uri(url, $"/bench/counts?prefix={Uri.EscapeDataString(prefix)}"), ct);
            using var document = JsonDocument.Parse(text);
            return document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => new KeyCount(
                p.Value.GetProperty("admitted").GetInt64(), p.Value.GetProperty("rejected").GetInt64(), p.Value.GetProperty("other").GetInt64()));
        }

        private async Task<string> WriteScriptAsync(CancellationToken ct)
        {
            var path = Path.Combine(work, "profile.lua");
            await File.WriteAllTextAsync(path, WrkScript, ct);
            return path;
        }

        /// <summary>wrk with 2 threads for the time given (and a request bound), the lua script picking ids (and API keys).</summary>
        private async Task<WrkRun> RunWrkAsync(Uri url, string script, string idFile, string keyPrefix, double runSeconds, CancellationToken ct)
        {
            var start = new ProcessStartInfo(wrk)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                ArgumentList = { "-t2", $"-c{connections}", $"-d{Math.Round(runSeconds).ToString(CultureInfo.InvariantCulture)}s", "--timeout", "10s", "-s", script, url.ToString().TrimEnd('/') },
            };
            start.Environment["BENCH_IDS"] = idFile;
            start.Environment["BENCH_KEY_PREFIX"] = keyPrefix;
            start.Environment["BENCH_KEYS"] = LimiterKeys.ToString(CultureInfo.InvariantCulture);
            start.Environment["BENCH_MAX_REQUESTS"] = "5000000";
            using var process = Process.Start(start) ?? throw new BenchServiceException("wrk did not start");
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = process.StandardError.ReadToEndAsync(ct);
            using (var bound = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                bound.CancelAfter(TimeSpan.FromSeconds(runSeconds + 60));
                try { await process.WaitForExitAsync(bound.Token); }
                catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw new BenchServiceException("wrk did not finish in time"); }
            }
            var output = await stdout;
            var line = output.Split('\n').LastOrDefault(l => l.StartsWith("{\"requests\"", StringComparison.Ordinal))
                ?? throw new BenchServiceException($"wrk printed no summary (exit {process.ExitCode}): {(await stderr).Trim()} {output.Trim()}");
            using var summary = JsonDocument.Parse(line);
            var root = summary.RootElement;
            var requests = root.GetProperty("requests").GetDouble();
            var micros = root.GetProperty("duration_us").GetDouble();
            return new WrkRun(requests / (micros / 1e6), root.GetProperty("p50_us").GetDouble() / 1000, root.GetProperty("p99_us").GetDouble() / 1000,
                root.GetProperty("non2xx").GetInt64(), root.GetProperty("socket_errors").GetInt64());
        }
    }

    /// <summary>
    /// Each wrk thread walks the ids from its own offset; with a key prefix, each request also carries X-Api-Key
    /// PREFIX0..PREFIX{BENCH_KEYS-1} in turn. A thread stops after its share of BENCH_MAX_REQUESTS (wrk has no request bound of its own). done() prints one
    /// JSON line: requests, microseconds, p50 and p99 in microseconds, non-2xx responses and socket errors.
    /// </summary>
    private const string WrkScript = """
        local ids = {}
        for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
        local prefix = os.getenv("BENCH_KEY_PREFIX") or ""
        local keys = tonumber(os.getenv("BENCH_KEYS") or "1")
        local max = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")
        local threads = 0
        local n = 0
        function setup(thread)
          threads = threads + 1
          thread:set("offset", threads * 7919)
        end
        function init(args)
          n = tonumber(offset) or 0
        end
        function request()
          n = n + 1
          if max > 0 and n - (tonumber(offset) or 0) > max / 2 then wrk.thread:stop() end
          local path = "/users/" .. ids[n % #ids + 1] .. "/profile"
          if prefix ~= "" then
            return wrk.format("GET", path, { ["X-Api-Key"] = prefix .. (n % keys) })
          end
          return wrk.format("GET", path)
        end
        function done(summary, latency, requests)
          local e = summary.errors
          io.write(string.format('{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"socket_errors":%d}\n',
            summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
        end
        """;

    /// <summary>A bench host process on a free loopback port; disposing it stops it.</summary>
    private sealed class HostProcess : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();

        private HostProcess(string name, Uri url, Process process)
        {
            Name = name;
            Url = url;
            _process = process;
        }

        public string Name { get; }

        public Uri Url { get; }

        public static async Task<HostProcess> StartAsync(string dll, string name, string[] settings, CancellationToken ct)
        {
            var url = new Uri($"http://127.0.0.1:{FreePort().ToString(CultureInfo.InvariantCulture)}");
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                ArgumentList = { dll, "--urls", url.ToString(), $"--UsersService:Schema={Schema}", "--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:ZiggyCreatures=Error" },
            };
            foreach (var setting in settings) start.ArgumentList.Add(setting);
            var process = Process.Start(start) ?? throw new BenchServiceException($"the {name} host did not start");
            var host = new HostProcess(name, url, process);
            process.OutputDataReceived += (_, e) => { lock (host._output) host._output.AppendLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { lock (host._output) host._output.AppendLine(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var waited = Stopwatch.StartNew();
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            while (true)
            {
                if (process.HasExited) throw new BenchServiceException($"the {name} host stopped (exit {process.ExitCode}): {host.Output()}");
                try
                {
                    using var response = await http.GetAsync(new Uri(url, "/health/ready"), ct);
                    if (response.IsSuccessStatusCode) return host;
                }
                catch (HttpRequestException) { }
                catch (TaskCanceledException) when (!ct.IsCancellationRequested) { }
                if (waited.Elapsed > TimeSpan.FromMinutes(2))
                {
                    host.Dispose();
                    throw new BenchServiceException($"the {name} host was not ready within 2 minutes: {host.Output()}");
                }
                await Task.Delay(250, ct);
            }
        }

        private string Output()
        {
            lock (_output) return _output.ToString().Trim();
        }

        public void Dispose()
        {
            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(10_000);
                }
            }
            catch (InvalidOperationException) { }
            _process.Dispose();
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    private static string? FindHost(string? given)
    {
        if (given is { Length: > 0 }) return File.Exists(given) ? Path.GetFullPath(given) : null;
        if (Environment.GetEnvironmentVariable("POLYSTORE_BENCH_SERVICE_HOST") is { Length: > 0 } fromEnvironment) return File.Exists(fromEnvironment) ? fromEnvironment : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "benchmarks", "Polystore.Bench.ServiceHost", "bin", "Release", "net10.0", "Polystore.Bench.ServiceHost.dll");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static IEnumerable<T> Rotate<T>(IReadOnlyList<T> items, int round) =>
        Enumerable.Range(0, items.Count).Select(i => items[(i + round) % items.Count]);

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        if (sorted.Count == 0) return 0;
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
