using System.Text.Json;

namespace Polystore.Bench.Tests;

/// <summary><c>polystore-bench redis</c> on the private Redis.</summary>
public sealed class BenchRedisTests
{
    // Each ratio the bench reports: the rows it divides (the denominator is the faster of its rows).
    private static readonly Dictionary<string, ((string Area, string Name) Ours, (string Area, string Name)[] Peers)> RatioInputs = new()
    {
        ["limiter_1_callers_vs_redis_rate_limiting"] = (("limiter", "polystore_1"), [("limiter", "redis_rate_limiting_1")]),
        ["limiter_4_callers_vs_redis_rate_limiting"] = (("limiter", "polystore_4"), [("limiter", "redis_rate_limiting_4")]),
        ["limiter_16_callers_vs_redis_rate_limiting"] = (("limiter", "polystore_16"), [("limiter", "redis_rate_limiting_16")]),
        ["limiter_64_callers_vs_redis_rate_limiting"] = (("limiter", "polystore_64"), [("limiter", "redis_rate_limiting_64")]),
        ["limiter_64_callers_vs_seed_python"] = (("limiter", "polystore_64"), [("limiter", "seed_python_64")]),
        ["limiter_64_callers_vs_ceiling"] = (("limiter", "polystore_64"), [("limiter", "ceiling_redis_benchmark_batched")]),
        ["cache_l1_vs_fusioncache"] = (("cache_l1", "polystore"), [("cache_l1", "fusioncache")]),
        ["cache_l2_vs_fusioncache"] = (("cache_l2", "polystore"), [("cache_l2", "fusioncache_l2_only")]),
        ["cache_recommended_vs_fusioncache"] = (("cache_recommended", "polystore"), [("cache_recommended", "fusioncache")]),
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
        foreach (var ours in new[] { ("limiter", "polystore_1"), ("limiter", "redis_rate_limiting_1"), ("limiter", "polystore_64"), ("limiter", "redis_rate_limiting_64"), ("cache_l1", "polystore"), ("cache_l1", "fusioncache"), ("cache_l2", "polystore"), ("cache_l2", "fusioncache_l2_only"), ("cache_recommended", "polystore"), ("cache_recommended", "fusioncache") })
            Assert.NotNull(rows.GetValueOrDefault(ours));
        Assert.DoesNotContain(rows.Keys, k => k.Area == "lock"); // --only leaves the lock out

        var ratios = doc.RootElement.GetProperty("ratios");
        var reported = ratios.EnumerateObject().Select(r => r.Name).ToHashSet();
        // Every ratio whose rows all have a figure is reported (a row skipped here, such as redis-py's, leaves its ratio out).
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
            // A ratio without a target (the ceiling, the recommended caches) has no met either.
            // met is judged on the unrounded ratio: a value printed within the rounding of its target may go either way.
            if (ratio.TryGetProperty("target", out var target) && target.ValueKind == JsonValueKind.Number)
            {
                if (Math.Abs(value - target.GetDouble()) > 0.005)
                    Assert.True(value >= target.GetDouble() == ratio.GetProperty("met").GetBoolean(), $"{name} = {value} against {target}, met: {ratio.GetProperty("met")}");
            }
            else Assert.False(ratio.TryGetProperty("met", out var met) && met.ValueKind != JsonValueKind.Null, $"{name} has no target, so no met");
        }
        // Polystore and RedisRateLimiting, and the two L2 caches, ran round by round: one ratio per round (--rounds 1).
        foreach (var name in new[] { "limiter_64_callers_vs_redis_rate_limiting", "cache_l2_vs_fusioncache" })
        {
            var rounds = ratios.GetProperty(name).GetProperty("rounds").EnumerateArray().Select(x => x.GetDouble()).ToList();
            Assert.Single(rounds);
            Assert.True(Math.Abs(rounds[0] - ratios.GetProperty(name).GetProperty("value").GetDouble()) <= 0.011, $"{name}: one round, so its round ratio is the ratio");
        }
        foreach (var n in new[] { 1, 4, 16, 64 })
        {
            Assert.Contains($"limiter_{n}_callers_vs_redis_rate_limiting", reported);
            Assert.Contains($"limiter_{n}_callers_p99_vs_redis_rate_limiting", reported);
        }
        Assert.Contains("cache_l1_vs_fusioncache", reported);
        Assert.Contains("cache_l2_vs_fusioncache", reported);
        Assert.Contains("cache_recommended_vs_fusioncache", reported);

        var stampede = doc.RootElement.GetProperty("stampede_factory_calls");
        Assert.Equal(1, stampede.GetProperty("polystore").GetDouble());
        Assert.Equal(rows[("cache_stampede", "polystore")], stampede.GetProperty("polystore").GetDouble());
        Assert.True(stampede.GetProperty("fusioncache").GetDouble() >= 1);
        Assert.True(stampede.GetProperty("met").GetBoolean());
    }

    [Fact]
    public async Task Bench_redis_scale_rows_are_decisions_taken_by_redis()
    {
        var result = await BenchRunner.RunAsync("redis", "--json", "--only", "scale", "--scale-keys", "1000", "--seconds", "0.5", "--rounds", "1");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var doc = JsonDocument.Parse(result.Stdout);
        var row = Assert.Single(doc.RootElement.GetProperty("rows").EnumerateArray());
        Assert.Equal("keys_1000", row.GetProperty("name").GetString());
        var note = row.GetProperty("note").GetString()!;
        Assert.True(row.GetProperty("per_second").ValueKind == JsonValueKind.Number, note);
        Assert.True(row.GetProperty("per_second").GetDouble() > 0, note);
        // Every key was created in Redis by its first decision, and no decision failed or came from the failure mode.
        Assert.Contains("(1,000 keys in Redis after it, 0 failed)", note);
        Assert.Equal(0, row.GetProperty("failed").GetInt64());
        Assert.Matches(@"[1-9][\d,]* EVALSHA calls", row.GetProperty("rounds")[0].GetProperty("extra").GetString());
    }
}
