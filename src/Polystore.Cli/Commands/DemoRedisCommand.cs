using System.Collections.Concurrent;
using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics;
using System.Globalization;
using Polystore.Redis;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Spectre.Console;
using StackExchange.Redis;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore demo redis</c>: cache miss and hit, a stampede, the rate limiter and a fenced lock, live.</summary>
internal static class DemoRedisCommand
{
    public static Command Create()
    {
        var cmd = new Command("redis", """
            On the configured Redis: a cache miss then hits (with timings), 500 callers stampeding one missing
            key (the factory runs once), the sliding-window limiter allowing then denying with retry-after,
            and four workers contending for one lock, each with its fencing token. Cleans up its keys.
            """);
        cmd.SetAction(async (parse, ct) =>
        {
            var (config, _) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            if (config.Redis is not { } settings) return CommonOptions.MissingStore("redis.yaml");
            await using var services = CliServices.Build(config);
            var redis = services.GetRequiredService<IConnectionMultiplexer>();
            if (!redis.IsConnected)
            {
                CommonOptions.Error.MarkupLine("[red]Redis is unreachable[/]");
                return ExitCodes.Unreachable;
            }
            var prefix = $"demo:{Guid.NewGuid():N}"[..13];
            try
            {
                await CacheAsync(redis, prefix);
                await StampedeAsync(redis, prefix);
                await LimiterAsync(redis, prefix, ct);
                await LockAsync(redis, prefix, ct);
            }
            finally
            {
                foreach (var server in redis.GetServers().Where(s => !s.IsReplica && s.IsConnected))
                    await foreach (var key in server.KeysAsync(redis.GetDatabase().Database, $"*{prefix}*", 500))
                        await redis.GetDatabase().KeyDeleteAsync(key);
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("0.000", CultureInfo.InvariantCulture) + " ms";

    private static async Task CacheAsync(IConnectionMultiplexer redis, string prefix)
    {
        AnsiConsole.MarkupLine("[bold]Cache-aside[/] (L1 in process + Redis L2; the factory stands for a 120 ms database query)");
        await using var cache = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":cache", UseL1 = true });
        await using var other = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":cache" });
        static async Task<string?> Load(CancellationToken _)
        {
            await Task.Delay(120);
            return "{\"id\":42,\"name\":\"Ada\"}";
        }
        var table = new Table().Border(TableBorder.Rounded).AddColumns("Call", "Served from", "Time", "Factory calls so far");
        var sw = Stopwatch.StartNew();
        await cache.GetOrSetAsync("user:42", Load);
        table.AddRow("1st GetOrSetAsync(\"user:42\")", "miss -> factory -> Redis + L1", Ms(sw.Elapsed), cache.FactoryCalls.ToString(CultureInfo.InvariantCulture));
        sw.Restart();
        await cache.GetOrSetAsync("user:42", Load);
        table.AddRow("2nd GetOrSetAsync(\"user:42\")", "L1 hit (in process)", Ms(sw.Elapsed), cache.FactoryCalls.ToString(CultureInfo.InvariantCulture));
        sw.Restart();
        await other.GetOrSetAsync("user:42", Load);
        table.AddRow("another instance, no L1", "Redis (L2) hit", Ms(sw.Elapsed), other.FactoryCalls.ToString(CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
    }

    private static async Task StampedeAsync(IConnectionMultiplexer redis, string prefix)
    {
        const int callers = 500;
        AnsiConsole.MarkupLine($"[bold]Stampede[/]: {callers} concurrent callers ask for one missing key");
        await using var cache = await RedisTieredCache.CreateAsync(redis, new RedisTieredCacheOptions { KeyPrefix = prefix + ":stampede", UseL1 = true });
        var calls = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
        {
            await gate.Task;
            return await cache.GetOrSetAsync("report:today", async _ =>
            {
                Interlocked.Increment(ref calls);
                await Task.Delay(200);
                return "expensive report";
            });
        })).ToArray();
        var sw = Stopwatch.StartNew();
        gate.SetResult();
        var results = await Task.WhenAll(tasks);
        AnsiConsole.MarkupLine($"  {results.Count(r => r == "expensive report")} callers got the value in {Ms(sw.Elapsed)}; factory calls: [green]{calls}[/]");
    }

    private static async Task LimiterAsync(IConnectionMultiplexer redis, string prefix, CancellationToken ct)
    {
        AnsiConsole.MarkupLine("[bold]Sliding-window rate limiter[/]: 5 requests per 10 s for user ann (exact log, server time)");
        var limiter = new RedisSlidingWindowRateLimiter(redis, new RedisSlidingWindowOptions { PermitLimit = 5, Window = TimeSpan.FromSeconds(10), KeyPrefix = prefix + ":rl" });
        var table = new Table().Border(TableBorder.Rounded).AddColumns("Request", "Decision", "Remaining", "Retry after", "Window empty in");
        for (var i = 1; i <= 7; i++)
        {
            var d = await limiter.TryAcquireAsync("user:ann", 1, ct);
            table.AddRow(i.ToString(CultureInfo.InvariantCulture), d.Allowed ? "[green]allowed[/]" : "[red]denied[/]", d.Remaining.ToString(CultureInfo.InvariantCulture),
                d.Allowed ? "-" : $"{d.RetryAfter.TotalSeconds:0.000} s", $"{d.Reset.TotalSeconds:0.000} s");
            await Task.Delay(150, ct);
        }
        AnsiConsole.Write(table);
    }

    private static async Task LockAsync(IConnectionMultiplexer redis, string prefix, CancellationToken ct)
    {
        AnsiConsole.MarkupLine("[bold]Fenced lock[/]: 4 workers contend for invoice:7; each holds it ~100 ms");
        var locks = new RedisLockProvider(redis, new RedisLockOptions { KeyPrefix = prefix + ":lock", Expiry = TimeSpan.FromSeconds(10) });
        var log = new ConcurrentQueue<(string Worker, long Fence, TimeSpan Waited)>();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(1, 4).Select(w => Task.Run(async () =>
        {
            var started = sw.Elapsed;
            await using var held = await locks.AcquireAsync("invoice:7", TimeSpan.FromSeconds(10), ct);
            log.Enqueue(($"worker {w}", held.FencingToken, sw.Elapsed - started));
            await Task.Delay(100, ct);
        }, ct)));
        var table = new Table().Border(TableBorder.Rounded).AddColumns("Order", "Worker", "Fencing token", "Waited");
        var order = 0;
        foreach (var (worker, fence, waited) in log)
            table.AddRow((++order).ToString(CultureInfo.InvariantCulture), worker, fence.ToString(CultureInfo.InvariantCulture), Ms(waited));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine("  Tokens only grow: a store that remembers the highest token it saw rejects a stale holder's late write.");
    }
}
