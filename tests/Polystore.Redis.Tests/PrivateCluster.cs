using System.Diagnostics;
using Polystore.Core.Configuration;
using Polystore.Testing;

namespace Polystore.Redis.Tests;

/// <summary>
/// A Redis Cluster of one test's own (three primaries, and a replica each when asked), so a node can be killed without
/// touching the shared cluster other tests use. Nodes 0-2 are the primaries; nodes 3-5, when asked for, their replicas.
/// </summary>
internal sealed class PrivateCluster : IAsyncDisposable
{
    public const string Password = "doctor-cluster-pw";

    // Long enough that a node stalled by a loaded machine is not failed over behind a test's back (a 1 s timeout did:
    // a test saw 4 primaries and 2 replicas), short enough that a killed node is marked failed within seconds.
    private const int NodeTimeoutMs = 3000;

    private PrivateCluster(IReadOnlyList<ThrowawayRedis> nodes) => Nodes = nodes;

    public IReadOnlyList<ThrowawayRedis> Nodes { get; }

    /// <summary>redis.yaml settings naming every node as a seed, the first one first.</summary>
    public RedisSettings Settings => new()
    {
        Connection = new() { Url = $"redis://127.0.0.1:{Nodes[0].Port}", Password = Password },
        Pool = new() { ConnectionTimeout = 2, SocketTimeout = 2 },
        Cluster = new() { Enabled = true, Nodes = [.. Nodes.Select(n => $"redis://127.0.0.1:{n.Port}")] },
    };

    /// <summary>Starts the nodes and joins them (redis-cli --cluster create); returns once every node says cluster_state:ok.</summary>
    public static async Task<PrivateCluster> StartAsync(bool replicas = false)
    {
        var ct = TestContext.Current.CancellationToken;
        var cluster = new PrivateCluster([.. Enumerable.Range(0, replicas ? 6 : 3)
            .Select(_ => new ThrowawayRedis(Password, 2, "--cluster-enabled", "yes", "--cluster-node-timeout", NodeTimeoutMs.ToString(System.Globalization.CultureInfo.InvariantCulture)))]);
        try
        {
            foreach (var node in cluster.Nodes) await node.StartAsync(ct);
            var info = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true };
            info.Environment["REDISCLI_AUTH"] = Password;
            // redis-cli --cluster create makes the first three the primaries and each later node a replica of one of them.
            var args = new[] { "--cluster", "create" }.Concat(cluster.Nodes.Select(n => $"127.0.0.1:{n.Port}"));
            if (replicas) args = args.Concat(["--cluster-replicas", "1"]);
            foreach (var arg in args.Append("--cluster-yes")) info.ArgumentList.Add(arg);
            using var create = Process.Start(info)!;
            var output = create.StandardOutput.ReadToEndAsync(ct);
            var errors = create.StandardError.ReadToEndAsync(ct);
            await create.WaitForExitAsync(ct);
            Assert.True(create.ExitCode == 0, await output + await errors);
            foreach (var node in cluster.Nodes) await WaitForStateAsync(node, "ok");
            // cluster_state:ok comes before every node has learned each replica's role from gossip; a test that counts
            // roles must start from the layout it asked for.
            foreach (var node in cluster.Nodes)
                await WaitAsync(node, "NODES", text => HasLayout(text, cluster.Nodes), $"cluster at {node.Port} never showed nodes 0-2 as primaries and 3-5 as their replicas");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    // Every node seen, none failing, nodes 0-2 primaries and (when asked) 3-5 replicas with their links up.
    private static bool HasLayout(string clusterNodes, IReadOnlyList<ThrowawayRedis> nodes)
    {
        var flagsByPort = clusterNodes.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' '))
            .Where(fields => fields.Length >= 8)
            .ToDictionary(fields => fields[1].Split('@')[0], fields => (Flags: fields[2].Split(','), Link: fields[7]));
        for (var i = 0; i < nodes.Count; i++)
        {
            if (!flagsByPort.TryGetValue($"127.0.0.1:{nodes[i].Port}", out var node)) return false;
            var role = i < 3 ? "master" : "slave";
            if (!node.Flags.Contains(role) || node.Flags.Any(f => f.StartsWith("fail", StringComparison.Ordinal)) || node.Link != "connected") return false;
        }
        return true;
    }

    /// <summary>Waits until <paramref name="node"/> reports <c>cluster_state:</c><paramref name="state"/>.</summary>
    public static async Task WaitForStateAsync(ThrowawayRedis node, string state) =>
        await WaitAsync(node, "INFO", $"cluster_state:{state}", $"cluster at {node.Port} never reached state {state}");

    /// <summary>Waits until <paramref name="observer"/> flags <paramref name="node"/> as failed (fail, not just fail?).</summary>
    public static async Task WaitForFailAsync(ThrowawayRedis observer, ThrowawayRedis node) =>
        await WaitAsync(observer, "NODES", text => text.Split('\n').Any(l => l.Contains($"127.0.0.1:{node.Port}@", StringComparison.Ordinal) && l.Split(' ')[2].Split(',').Contains("fail")),
            $"node {observer.Port} never marked {node.Port} as failed");

    private static Task WaitAsync(ThrowawayRedis node, string subcommand, string expected, string failure) =>
        WaitAsync(node, subcommand, text => text.Contains(expected, StringComparison.Ordinal), failure);

    private static async Task WaitAsync(ThrowawayRedis node, string subcommand, Func<string, bool> done, string failure)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var admin = await node.ConnectAsync();
        var server = admin.GetServers()[0];
        for (var i = 0; i < 600; i++) // up to 60 s on a loaded machine; the node timeout is 3 s
        {
            var text = (string?)await server.ExecuteAsync("CLUSTER", subcommand) ?? "";
            if (done(text)) return;
            await Task.Delay(100, ct);
        }
        Assert.Fail(failure);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes) await node.DisposeAsync();
    }
}
