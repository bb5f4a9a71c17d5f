using Polystore.Cli.Tests;
using Polystore.Testing;

namespace Polystore.Bench.Tests;

/// <summary>Runs the real polystore-bench executable against the private servers.</summary>
internal static class BenchRunner
{
    public static Task<CliRunner.Result> RunAsync(params string[] args) =>
        CliRunner.RunExecutableAsync("polystore-bench", new Dictionary<string, string?> { ["POLYSTORE_CONFIG_DIR"] = TestServers.ConfigDirectory }, TestContext.Current.CancellationToken, args);
}
