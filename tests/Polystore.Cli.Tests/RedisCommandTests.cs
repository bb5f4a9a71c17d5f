using System.Text.Json;
using Polystore.Testing;

namespace Polystore.Cli.Tests;

public sealed class RedisCommandTests
{
    private static Dictionary<string, string?> Env => new() { ["POLYSTORE_CONFIG_DIR"] = TestServers.ConfigDirectory };

    [Fact]
    public async Task Demo_redis_shows_one_factory_call_a_denial_and_growing_fencing_tokens()
    {
        var result = await CliRunner.RunAsync(Env, "demo", "redis");
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("factory calls: 1", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("denied", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("L1 hit", result.Stdout, StringComparison.Ordinal);
        var password = TestServers.Get("REDIS_PASSWORD");
        Assert.False(string.IsNullOrEmpty(password));
        Assert.DoesNotContain(password, result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_redis_json_has_ratios_for_the_cache_area()
    {
        var result = await CliRunner.RunAsync(Env, "bench", "redis", "--json", "--only", "cache", "--seconds", "0.5", "--rounds", "1");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var doc = JsonDocument.Parse(result.Stdout);
        var ratios = doc.RootElement.GetProperty("ratios");
        Assert.True(ratios.GetProperty("cache_l1_vs_fusioncache").GetProperty("value").GetDouble() > 0);
        Assert.Equal(1, doc.RootElement.GetProperty("stampede_factory_calls").GetProperty("polystore").GetDouble());
    }
}
