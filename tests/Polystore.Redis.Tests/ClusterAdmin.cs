using System.Diagnostics;
using System.Globalization;
using System.Net;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// Drives the private Redis Cluster (3 masters + 3 replicas of <c>./run up --redis-cluster</c>) for the failover
/// tests: reads the topology from every node, fails a master over to its replica, moves slots with
/// <c>redis-cli --cluster reshard</c> or by hand, and puts the topology back as <c>./run up</c> made it.
/// Its own connection, so the application's connection under test only ever sees what Redis tells it.
/// </summary>
internal sealed class ClusterAdmin : IAsyncDisposable
{
    private static readonly TimeSpan SettleBound = TimeSpan.FromSeconds(30);
    private readonly ConnectionMultiplexer _mux;
    private readonly string _password;

    private ClusterAdmin(ConnectionMultiplexer mux, string password)
    {
        _mux = mux;
        _password = password;
    }

    /// <summary>The ports of the masters as <c>./run up</c> made them, then those of their replicas.</summary>
    public static IReadOnlyList<int> MasterPorts => Ports("REDIS_CLUSTER_PORTS");

    public static IReadOnlyList<int> ReplicaPorts => Ports("REDIS_CLUSTER_REPLICA_PORTS");

    /// <summary>Connects to every node; skips the test when the cluster has no replicas (an older <c>./run up</c>).</summary>
    public static async Task<ClusterAdmin> ConnectAsync()
    {
        var settings = TestServers.RedisCluster;
        if (settings is null) Assert.Skip("no Redis Cluster: run ./run up --redis-cluster");
        if (ReplicaPorts.Count == 0) Assert.Skip("the Redis Cluster has no replicas: run ./run down, then ./run up --redis-cluster");
        var options = RedisDriverSettings.Build(settings);
        options.AllowAdmin = true;
        options.EndPoints.Clear();
        foreach (var port in MasterPorts.Concat(ReplicaPorts)) options.EndPoints.Add("127.0.0.1", port);
        var admin = new ClusterAdmin(await ConnectionMultiplexer.ConnectAsync(options), settings.Connection.Password ?? "");
        await admin.WaitSettledAsync();
        return admin;
    }

    /// <summary>The cluster as node <paramref name="port"/> sees it.</summary>
    public async Task<ClusterView> ViewAsync(int port)
    {
        var text = (string)(await Server(port).ExecuteAsync("CLUSTER", "NODES"))!;
        // Over RESP3 the reply is a verbatim string, which may keep its "txt:" format prefix.
        return ClusterView.Parse(text.StartsWith("txt:", StringComparison.Ordinal) ? text[4..] : text);
    }

    /// <summary>
    /// Waits until every node reports 3 masters with one replica each, no failure flags, every slot served and the same
    /// slot owners, and every replica's link to its master up. Returns that view.
    /// </summary>
    public async Task<ClusterView> WaitSettledAsync()
    {
        var sw = Stopwatch.StartNew();
        string last = "";
        while (true)
        {
            try
            {
                var views = new List<ClusterView>();
                foreach (var port in MasterPorts.Concat(ReplicaPorts)) views.Add(await ViewAsync(port));
                var first = views[0];
                last = first.Describe();
                var problem = views.Select(v => v.Problem(first)).FirstOrDefault(p => p is not null) ?? await UnlinkedReplicaAsync(first);
                if (problem is null) return first;
                last = $"{problem}; view: {last}";
            }
            catch (RedisException e)
            {
                last = e.Message;
            }
            if (sw.Elapsed > SettleBound) Assert.Fail($"the Redis Cluster did not settle within {SettleBound.TotalSeconds:0} s; last view: {last}");
            await Task.Delay(20);
        }
    }

    private async Task<string?> UnlinkedReplicaAsync(ClusterView view)
    {
        foreach (var replica in view.Replicas)
        {
            var info = (await Server(replica.Port).ExecuteAsync("INFO", "replication")).ToString();
            if (!info.Contains("master_link_status:up", StringComparison.Ordinal)) return $"replica {replica.Port} not linked: {info.Replace("\r\n", " ", StringComparison.Ordinal)}";
        }
        return null;
    }

    /// <summary>
    /// <c>CLUSTER FAILOVER</c> on <paramref name="replica"/> (a coordinated hand-over: its master stops taking writes
    /// until the replica has them all). Returns once the replica is master in every node's view and the cluster settled.
    /// </summary>
    public async Task<ClusterView> FailoverAsync(ClusterNode replica)
    {
        await Server(replica.Port).ExecuteAsync("CLUSTER", "FAILOVER");
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var view = await WaitSettledAsync();
            if (view.Node(replica.Id).IsMaster) return view;
            if (sw.Elapsed > SettleBound) Assert.Fail($"127.0.0.1:{replica.Port} did not become master within {SettleBound.TotalSeconds:0} s");
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// Puts the masters back on the ports <c>./run up</c> gave them (failing back any master that is a replica now)
    /// and the slots back as <c>redis-cli --cluster create</c> split them, so every scenario starts from the same topology.
    /// </summary>
    public async Task RestoreAsync()
    {
        var view = await WaitSettledAsync();
        foreach (var port in MasterPorts)
        {
            var node = view.ByPort(port);
            if (!node.IsMaster) view = await FailoverAsync(node);
        }
        // The initial split of 16384 slots over three masters.
        int[] starts = [0, 5461, 10923, 16384];
        for (var i = 0; i < 3; i++)
        {
            var owner = view.ByPort(MasterPorts[i]);
            for (var slot = starts[i]; slot < starts[i + 1]; slot++)
            {
                var current = view.Owner(slot);
                if (current.Id != owner.Id)
                {
                    await MigrateSlotAsync(slot, current, owner);
                    view = await WaitSettledAsync();
                }
            }
        }
    }

    /// <summary>
    /// Moves <paramref name="slots"/> slots from <paramref name="from"/> to <paramref name="to"/> with
    /// <c>redis-cli --cluster reshard</c> (it takes the lowest slots of the source), keys included.
    /// </summary>
    public async Task ReshardAsync(ClusterNode from, ClusterNode to, int slots)
    {
        var psi = new ProcessStartInfo("redis-cli")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            "--cluster", "reshard", $"127.0.0.1:{from.Port}", "--cluster-from", from.Id, "--cluster-to", to.Id,
            "--cluster-slots", slots.ToString(CultureInfo.InvariantCulture), "--cluster-yes",
        }) psi.ArgumentList.Add(a);
        psi.Environment["REDISCLI_AUTH"] = _password; // never on the command line
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var output = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, $"redis-cli --cluster reshard failed ({process.ExitCode}): {Tail(output)}");
        await WaitSettledAsync();
    }

    /// <summary>
    /// Starts moving <paramref name="slot"/> (IMPORTING on the target, MIGRATING on the source) without moving keys:
    /// the state in which a multi-key call whose keys are split between the nodes is answered TRYAGAIN.
    /// </summary>
    public async Task BeginMigrationAsync(int slot, ClusterNode from, ClusterNode to)
    {
        await Server(to.Port).ExecuteAsync("CLUSTER", "SETSLOT", slot, "IMPORTING", from.Id);
        await Server(from.Port).ExecuteAsync("CLUSTER", "SETSLOT", slot, "MIGRATING", to.Id);
    }

    /// <summary>Moves <paramref name="keys"/> (of a slot being migrated) from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public async Task MigrateKeysAsync(ClusterNode from, ClusterNode to, params RedisKey[] keys)
    {
        var args = new List<object> { "127.0.0.1", to.Port, "", 0, 5000, "AUTH", _password, "KEYS" };
        args.AddRange(keys.Select(k => (object)(string)k!));
        await Server(from.Port).ExecuteAsync("MIGRATE", args.ToArray());
    }

    /// <summary>Moves what is left of <paramref name="slot"/> and gives it to <paramref name="to"/> on every master.</summary>
    public async Task EndMigrationAsync(int slot, ClusterNode from, ClusterNode to)
    {
        while (true)
        {
            var keys = (RedisResult[])(await Server(from.Port).ExecuteAsync("CLUSTER", "GETKEYSINSLOT", slot, 100))!;
            if (keys.Length == 0) break;
            await MigrateKeysAsync(from, to, keys.Select(k => (RedisKey)(string)k!).ToArray());
        }
        // The target first, then the source, then the other masters, as redis-cli does.
        await Server(to.Port).ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", to.Id);
        await Server(from.Port).ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", to.Id);
        var view = await ViewAsync(to.Port);
        foreach (var master in view.Masters.Where(m => m.Id != to.Id && m.Id != from.Id))
            await Server(master.Port).ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", to.Id);
    }

    /// <summary>The whole move of one slot by hand.</summary>
    public async Task MigrateSlotAsync(int slot, ClusterNode from, ClusterNode to)
    {
        await BeginMigrationAsync(slot, from, to);
        await EndMigrationAsync(slot, from, to);
    }

    /// <summary>Keys matching <paramref name="pattern"/> on node <paramref name="port"/> (SCAN).</summary>
    public async Task<List<string>> ScanAsync(int port, string pattern)
    {
        var found = new List<string>();
        await foreach (var key in Server(port).KeysAsync(0, pattern, 1000)) found.Add((string)key!);
        return found;
    }

    public IServer Server(int port) => _mux.GetServer(new IPEndPoint(IPAddress.Loopback, port));

    public ValueTask DisposeAsync() => _mux.DisposeAsync();

    private static string Tail(string text) => text.Length <= 600 ? text : text[^600..];

    private static IReadOnlyList<int> Ports(string name) =>
        (TestServers.Get(name) ?? "").Trim('"').Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToList();
}

/// <summary>One node of <c>CLUSTER NODES</c>.</summary>
internal sealed record ClusterNode(string Id, int Port, bool IsMaster, string? MasterId, bool Failing, IReadOnlyList<(int From, int To)> Slots)
{
    public bool Owns(int slot) => Slots.Any(r => slot >= r.From && slot <= r.To);

    public int SlotCount => Slots.Sum(r => r.To - r.From + 1);
}

/// <summary>The cluster as one node sees it.</summary>
internal sealed class ClusterView(IReadOnlyList<ClusterNode> nodes)
{
    public IReadOnlyList<ClusterNode> Nodes { get; } = nodes;

    public IReadOnlyList<ClusterNode> Masters => [.. Nodes.Where(n => n.IsMaster)];

    public IReadOnlyList<ClusterNode> Replicas => [.. Nodes.Where(n => !n.IsMaster)];

    public bool AnyFailing => Nodes.Any(n => n.Failing);

    public bool CoversAllSlots => Masters.Sum(m => m.SlotCount) == 16384;

    public ClusterNode Node(string id) => Nodes.Single(n => n.Id == id);

    public ClusterNode ByPort(int port) => Nodes.Single(n => n.Port == port);

    public ClusterNode Owner(int slot) => Masters.Single(m => m.Owns(slot));

    public ClusterNode ReplicaOf(ClusterNode master) => Replicas.Single(r => r.MasterId == master.Id);

    /// <summary>Why this view is not settled (or differs from <paramref name="reference"/>); null when it is.</summary>
    public string? Problem(ClusterView reference)
    {
        if (Masters.Count != 3 || Replicas.Count != 3) return $"{Masters.Count} masters, {Replicas.Count} replicas";
        if (AnyFailing) return "a node is flagged failing";
        if (!CoversAllSlots) return "not every slot is served";
        if (!SameOwners(reference)) return "nodes disagree on slot owners";
        if (Masters.Any(m => Replicas.Count(r => r.MasterId == m.Id) != 1)) return "a master without exactly one replica";
        return null;
    }

    public bool SameOwners(ClusterView other) =>
        Masters.Count == other.Masters.Count && Masters.All(m => other.Nodes.Any(o => o.Id == m.Id && o.IsMaster && o.Slots.SequenceEqual(m.Slots)));

    public string Describe() => string.Join("; ", Nodes.OrderBy(n => n.Port).Select(n =>
        $"{n.Port} {(n.IsMaster ? "master" : "replica")}{(n.Failing ? " failing" : "")} {string.Join(",", n.Slots.Select(r => $"{r.From}-{r.To}"))}"));

    // <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> <slot> ...
    // Slots being migrated show as [slot->-id] / [slot-<-id] and are not counted as owned.
    public static ClusterView Parse(string text)
    {
        var nodes = new List<ClusterNode>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var f = line.Split(' ');
            var address = f[1].Split('@')[0];
            var port = int.Parse(address[(address.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
            var flags = f[2].Split(',');
            var slots = new List<(int, int)>();
            foreach (var s in f.Skip(8))
            {
                if (s.StartsWith('[')) continue;
                var dash = s.IndexOf('-');
                slots.Add(dash < 0
                    ? (int.Parse(s, CultureInfo.InvariantCulture), int.Parse(s, CultureInfo.InvariantCulture))
                    : (int.Parse(s[..dash], CultureInfo.InvariantCulture), int.Parse(s[(dash + 1)..], CultureInfo.InvariantCulture)));
            }
            nodes.Add(new ClusterNode(f[0], port, flags.Contains("master"), f[3] == "-" ? null : f[3],
                flags.Contains("fail") || flags.Contains("fail?") || flags.Contains("handshake") || flags.Contains("noaddr"), slots));
        }
        return new ClusterView(nodes);
    }
}
