using System.Diagnostics;
using System.Text.Json;
using Polystore.Core.Configuration;

namespace Polystore.Testing;

/// <summary>
/// The private pg_auto_failover formation that <c>./run up --pg-ha</c> started (a monitor, node1 and node2), driven
/// through the <c>ctl</c> script it wrote: the engine's own commands, and crashes of a whole node.
/// </summary>
public sealed class PgAutoFailover
{
    private readonly string _home;

    private PgAutoFailover(string home, PostgresSettings settings)
    {
        _home = home;
        Settings = settings;
    }

    /// <summary>The formation, or null (with the reason) when <c>./run up --pg-ha</c> was not used.</summary>
    public static PgAutoFailover? Find(out string reason)
    {
        reason = "no pg_auto_failover formation: start one with ./run up --pg-ha (./run test and ./run chaos do)";
        var dir = Path.Combine(TestServers.State, "config-pg-ha");
        if (TestServers.Get("HAS_PG_HA") != "1" || TestServers.Get("PG_HA") is not { Length: > 0 } home || !Directory.Exists(dir)) return null;
        return new PgAutoFailover(home, PolystoreConfig.Load(dir).Postgres!);
    }

    /// <summary>postgresql.yaml of the formation: every node in <c>connection.hosts</c>, connections to the primary.</summary>
    public PostgresSettings Settings { get; }

    /// <summary>One node as the monitor sees it.</summary>
    public sealed record Node(string Name, int Port, string Current, string Assigned, bool Healthy);

    /// <summary>The nodes, as <c>pg_autoctl show state</c> reports them.</summary>
    public async Task<IReadOnlyList<Node>> StateAsync(CancellationToken cancellationToken)
    {
        var json = await AutoctlAsync(cancellationToken, "show", "state", "--json");
        using var doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.EnumerateArray().Select(n => new Node(
            n.GetProperty("nodename").GetString()!, n.GetProperty("nodeport").GetInt32(),
            n.GetProperty("current_group_state").GetString()!, n.GetProperty("assigned_group_state").GetString()!,
            n.GetProperty("health").GetInt32() == 1)).OrderBy(n => n.Name, StringComparer.Ordinal)];
    }

    /// <summary>Waits until one node is primary and the other secondary, both healthy and settled; returns the primary.</summary>
    public async Task<Node> WaitHealthyAsync(CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(120);
        var started = Stopwatch.GetTimestamp();
        IReadOnlyList<Node> last = [];
        while (Stopwatch.GetElapsedTime(started) < limit)
        {
            try
            {
                last = await StateAsync(cancellationToken);
                if (last.Count == 2 && last.All(n => n.Healthy && n.Current == n.Assigned)
                    && last.Count(n => n.Current == "primary") == 1 && last.Count(n => n.Current == "secondary") == 1)
                    return last.Single(n => n.Current == "primary");
            }
            catch (InvalidOperationException)
            {
                // The monitor is busy or restarting: ask again.
            }
            await Task.Delay(200, cancellationToken);
        }
        throw new TimeoutException($"the formation did not settle to primary/secondary within {limit.TotalSeconds:0} s; last seen: {string.Join("; ", last)}");
    }

    /// <summary>The engine's own failover: the primary drains and is demoted, the secondary promoted.</summary>
    public Task PerformFailoverAsync(CancellationToken cancellationToken) => AutoctlAsync(cancellationToken, "perform", "failover");

    /// <summary>
    /// Synchronous (the default: the secondary counts in the replication quorum, so a commit is acknowledged once it
    /// has it) or asynchronous (the primary acknowledges alone).
    /// </summary>
    public async Task SetSynchronousAsync(string node, bool synchronous, CancellationToken cancellationToken)
    {
        // pg_autoctl 2.0 sometimes fails this call on its own (a deadlock on the monitor while the node's keeper
        // updates its row, or a garbled parameter): the setting is idempotent, so it is tried again.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await RunAsync(cancellationToken, Ctl, "autoctl", "set", "node", "replication-quorum", synchronous ? "true" : "false", "--pgdata", Path.Combine(_home, node));
                return;
            }
            catch (InvalidOperationException) when (attempt < 5)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }

    /// <summary>A crash of the whole node: SIGKILL to its pg_autoctl and to the Postgres it supervises (else pg_autoctl would restart Postgres in place).</summary>
    public Task KillNodeAsync(string node, CancellationToken cancellationToken) => RunAsync(cancellationToken, Ctl, "kill", node);

    /// <summary>Starts a node's pg_autoctl again; it rejoins as a secondary (rewinding what the new primary never had).</summary>
    public Task StartNodeAsync(string node, CancellationToken cancellationToken) => RunAsync(cancellationToken, Ctl, "start", node);

    private string Ctl => Path.Combine(_home, "ctl");

    private Task<string> AutoctlAsync(CancellationToken cancellationToken, params string[] args) =>
        RunAsync(cancellationToken, Ctl, ["autoctl", .. args, "--pgdata", Path.Combine(_home, "monitor")]);

    private static async Task<string> RunAsync(CancellationToken cancellationToken, string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = p.StandardError.ReadToEndAsync(cancellationToken);
        await p.WaitForExitAsync(cancellationToken);
        if (p.ExitCode != 0) throw new InvalidOperationException($"ctl {string.Join(' ', args)} exited {p.ExitCode}: {(await stderr).Trim()}");
        return await stdout;
    }
}
