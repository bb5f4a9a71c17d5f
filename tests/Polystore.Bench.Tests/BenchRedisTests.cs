using System.Text.Json;

namespace Polystore.Bench.Tests;

/// <summary><c>polystore-bench redis</c> on the private Redis.</summary>
public sealed class BenchRedisTests
{
    // Each ratio the bench reports: the rows it divides (the denominator is the faster of its rows).
    private static readonly Dictionary<string, ((string Area, string Name) Ours, (string Area, string Name)[] Peers)> RatioInputs = new()
    {
        ["limiter_vs_redis_rate_limiting"] = (("limiter", "polystore"), [("limiter", "redis_rate_limiting")]),
        ["limiter_vs_seed_python"] = (("limiter", "polystore"), [("limiter", "seed_python")]),
        ["limiter_vs_ceiling"] = (("limiter", "polystore"), [("limiter", "ceiling_redis_benchmark")]),
        ["lock_vs_faster_peer"] = (("lock", "polystore"), [("lock", "redlock_net"), ("lock", "distributed_lock_redis")]),
        ["cache_l1_vs_fusioncache"] = (("cache_l1", "polystore"), [("cache_l1", "fusioncache")]),
        ["cache_l2_vs_fusioncache"] = (("cache_l2", "polystore"), [("cache_l2", "fusioncache")]),
    };

    [Fact]
    public async Task Bench_redis_json_ratios_are_computed_from_its_rows_and_the_stampede_ran_one_factory()
    {
        var result = await BenchRunner.RunAsync("redis", "--json", "--only", "limiter", "cache", "--seconds", "0.5", "--rounds", "1");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var doc = JsonDocument.Parse(result.Stdout);
        var rows = new Dictionary<(string Area, string Name), double?>();
        foreach (var row in doc.RootElement.GetProperty("rows").EnumerateArray())
        {
            var key = (row.GetProperty("area").GetString()!, row.GetProperty("name").GetString()!);
            // A row that could not run here (no redis-py, no redis-benchmark) has no figure and says why.
            double? figure = row.TryGetProperty("per_second", out var f) && f.ValueKind == JsonValueKind.Number ? f.GetDouble() : null;
            if (figure is null) Assert.Matches("(skipped|failed): ", row.GetProperty("note").GetString());
            else Assert.True(figure > 0, $"{key}: {figure}");
            rows.Add(key, figure);
        }
        foreach (var ours in new[] { ("limiter", "polystore"), ("limiter", "redis_rate_limiting"), ("cache_l1", "polystore"), ("cache_l1", "fusioncache"), ("cache_l2", "polystore"), ("cache_l2", "fusioncache") })
            Assert.NotNull(rows.GetValueOrDefault(ours));
        Assert.DoesNotContain(rows.Keys, k => k.Area == "lock"); // --only leaves the lock out

        var ratios = doc.RootElement.GetProperty("ratios");
        var reported = ratios.EnumerateObject().Select(r => r.Name).ToHashSet();
        Assert.Subset(RatioInputs.Keys.ToHashSet(), reported);
        foreach (var (name, (ours, peers)) in RatioInputs)
        {
            var numerator = rows.GetValueOrDefault(ours);
            var denominators = peers.Select(p => rows.GetValueOrDefault(p)).ToArray();
            if (numerator is null || denominators.Any(d => d is null))
            {
                Assert.DoesNotContain(name, reported); // an area or row that did not run has no ratio
                continue;
            }
            var ratio = ratios.GetProperty(name);
            var expected = numerator.Value / denominators.Max()!.Value;
            var value = ratio.GetProperty("value").GetDouble();
            Assert.True(Math.Abs(value - expected) <= 0.006 + (expected * 1e-6), $"{name} = {value}, but its rows give {expected}");
            Assert.Equal(value >= ratio.GetProperty("target").GetDouble(), ratio.GetProperty("met").GetBoolean());
        }
        // Polystore and RedisRateLimiting, and the two L2 caches, ran round by round: one ratio per round (--rounds 1).
        foreach (var name in new[] { "limiter_vs_redis_rate_limiting", "cache_l2_vs_fusioncache" })
        {
            var rounds = ratios.GetProperty(name).GetProperty("rounds").EnumerateArray().Select(x => x.GetDouble()).ToList();
            Assert.Single(rounds);
            Assert.True(Math.Abs(rounds[0] - ratios.GetProperty(name).GetProperty("value").GetDouble()) <= 0.011, $"{name}: one round, so its round ratio is the ratio");
        }
        Assert.Contains("limiter_vs_redis_rate_limiting", reported);
        Assert.Contains("cache_l1_vs_fusioncache", reported);
        Assert.Contains("cache_l2_vs_fusioncache", reported);

        var stampede = doc.RootElement.GetProperty("stampede_factory_calls");
        Assert.Equal(1, stampede.GetProperty("polystore").GetDouble());
        Assert.Equal(rows[("cache_stampede", "polystore")], stampede.GetProperty("polystore").GetDouble());
        Assert.True(stampede.GetProperty("fusioncache").GetDouble() >= 1);
        Assert.True(stampede.GetProperty("met").GetBoolean());
    }
}
