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
}
