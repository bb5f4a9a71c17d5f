using System.Diagnostics;
using System.Globalization;
using Polystore.Redis.Caching;
using Polystore.Redis.Locking;
using Polystore.Redis.RateLimiting;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// Measures what a caller waits while Redis is stopped, with the circuit breaker and without it, and how long recovery
/// takes after a restart. Figures only, no assertion on them: run it by hand with POLYSTORE_OUTAGE_REPORT set to a file
/// the figures are appended to (docs/outages.md has the command and the latest figures).
/// </summary>
public sealed class OutageLatencyReport
{
    private const int Samples = 5000;
    private readonly string _prefix = TestServers.UniqueName("outage");
    private readonly List<string> _lines = [];

    [Fact]
    public async Task Latency_while_Redis_is_stopped_and_recovery_after_restart()
    {
        var report = Environment.GetEnvironmentVariable("POLYSTORE_OUTAGE_REPORT");
        Assert.SkipWhen(string.IsNullOrEmpty(report), "a measurement, not a test: set POLYSTORE_OUTAGE_REPORT=<file> to run it");
        var ct = TestContext.Current.CancellationToken;
        // redis.yaml's defaults: 5 s connect and socket timeouts.
        using var server = new ThrowawayRedis(timeoutSeconds: 5);
        await server.StartAsync(ct);
        await using var withBreaker = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(server.Settings));
        await using var without = await ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(server.Settings));
        var off = new RedisCircuitBreakerOptions { Enabled = false, OperationTimeout = Timeout.InfiniteTimeSpan };
        var cache = await RedisTieredCache.CreateAsync(withBreaker, new RedisTieredCacheOptions { KeyPrefix = _prefix }, ct);
        var limiter = new RedisSlidingWindowRateLimiter(withBreaker, new RedisSlidingWindowOptions { PermitLimit = 1_000_000, KeyPrefix = _prefix, OnRedisFailure = RedisFailureMode.FailOpen });
        var locks = new RedisLockProvider(withBreaker, new RedisLockOptions { KeyPrefix = _prefix });
        var oldCache = await RedisTieredCache.CreateAsync(without, new RedisTieredCacheOptions { KeyPrefix = _prefix, CircuitBreaker = off }, ct);
        var oldLimiter = new RedisSlidingWindowRateLimiter(without, new RedisSlidingWindowOptions { PermitLimit = 1_000_000, KeyPrefix = _prefix, OnRedisFailure = RedisFailureMode.FailOpen, CircuitBreaker = off });
        var breaker = locks.Breaker;
        Assert.False((await limiter.TryAcquireAsync("warm", 1, ct)).IsFallback);
        Assert.False((await oldLimiter.TryAcquireAsync("warm", 1, ct)).IsFallback);

        await server.KillAsync();
        var killed = Stopwatch.StartNew();
        while (!breaker.IsOpen && killed.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(1, ct);
        Line($"breaker open {Ms(killed.Elapsed)} after the kill ({breaker.Describe()})");

        var n = 0;
        await Measure("cache miss (factory returns at once), breaker open", Samples, async () => await cache.GetOrSetAsync("m" + n++, _ => Task.FromResult<string?>("v"), cancellationToken: ct));
        await Measure("limiter decision (FailOpen), breaker open", Samples, async () => await limiter.TryAcquireAsync("k", 1, ct));
        await Measure("health ping (RedisPing), breaker open", Samples, async () => await RedisPing.PingAsync(withBreaker, ct));
        await Measure("lock acquire (refused), breaker open", Samples, async () =>
        {
            try { await locks.TryAcquireAsync("r", TimeSpan.Zero, ct); }
            catch (RedisConnectionException) { /* refused, as it must be */ }
        });
        var burst = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 200).Select(i => limiter.TryAcquireAsync("b" + i, 1, ct).AsTask()));
        Line($"200 concurrent limiter decisions, breaker open: all answered in {Ms(burst.Elapsed)}");

        // The same calls without the breaker and operation timeout (the behaviour before them): few samples, each waits.
        var m = 0;
        await Task.WhenAll(
            Measure("cache miss, no breaker", 3, async () => await oldCache.GetOrSetAsync("old" + m++, _ => Task.FromResult<string?>("v"), cancellationToken: ct)),
            Measure("limiter decision (FailOpen), no breaker", 3, async () => await oldLimiter.TryAcquireAsync("k", 1, ct)));
        burst.Restart();
        await Task.WhenAll(Enumerable.Range(0, 200).Select(i => oldLimiter.TryAcquireAsync("b" + i, 1, ct).AsTask()));
        Line($"200 concurrent limiter decisions, no breaker: all answered in {Ms(burst.Elapsed)}");

        await server.StartAsync(ct);
        var restarted = Stopwatch.StartNew();
        TimeSpan? closed = null, decided = null, oldDecided = null;
        var old = Task.Run(async () =>
        {
            while (oldDecided is null && restarted.Elapsed < TimeSpan.FromSeconds(60))
                if (!(await oldLimiter.TryAcquireAsync("r", 1, ct)).IsFallback) oldDecided = restarted.Elapsed;
        }, ct);
        while ((closed is null || decided is null) && restarted.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (closed is null && breaker.State == RedisCircuitBreaker.Closed) closed = restarted.Elapsed;
            if (decided is null && !(await limiter.TryAcquireAsync("r", 1, ct)).IsFallback) decided = restarted.Elapsed;
            await Task.Delay(1, ct);
        }
        await old;
        Line($"recovery after the restart (server listening): breaker closed after {Ms(closed)}, first decision through Redis after {Ms(decided)}; without the breaker, after {Ms(oldDecided)}");
        Line($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        await File.AppendAllLinesAsync(report!, _lines, ct);
        await cache.DisposeAsync();
        await oldCache.DisposeAsync();
    }

    private async Task Measure(string what, int samples, Func<Task> call)
    {
        var times = new double[samples];
        for (var i = 0; i < samples; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await call();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        double At(double q) => times[Math.Min(samples - 1, (int)Math.Ceiling(q * samples) - 1)];
        Line(string.Create(CultureInfo.InvariantCulture, $"{what}: n={samples} p50={At(0.50):0.###} ms p99={At(0.99):0.###} ms max={times[^1]:0.###} ms"));
    }

    private void Line(string line)
    {
        lock (_lines) _lines.Add(line);
        TestContext.Current.TestOutputHelper?.WriteLine(line);
    }

    private static string Ms(TimeSpan? t) => t is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v.TotalMilliseconds:0.#} ms") : "never (60 s)";
}
