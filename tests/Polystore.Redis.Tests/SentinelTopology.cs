using System.Diagnostics;
using System.Net;
using Polystore.Core.Configuration;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>
/// The private Sentinel setup of <c>./run up --redis-sentinel</c> (a primary and a replica watched by three
/// sentinels) as failover tests drive it: who is primary, a forced failover, a SIGKILL of the primary, its restart
/// as a replica of the new one, and the wait until the topology is healthy again for the next test.
/// </summary>
internal sealed class SentinelTopology : IAsyncDisposable
{
    private readonly ConnectionMultiplexer _sentinels;
    private readonly string _password;
    private readonly string _tmp;
    private readonly Dictionary<int, ConnectionMultiplexer> _direct = [];

    private SentinelTopology(RedisSettings settings, ConnectionMultiplexer sentinels, string password, string tmp, int[] dataPorts)
    {
        Settings = settings;
        _sentinels = sentinels;
        _password = password;
        _tmp = tmp;
        DataPorts = dataPorts;
    }

    /// <summary>redis.yaml of the Sentinel setup (sentinel mode).</summary>
    public RedisSettings Settings { get; }

    /// <summary>The two data nodes' ports (primary and replica, in either role).</summary>
    public int[] DataPorts { get; }

    /// <summary>The master name the sentinels watch.</summary>
    public string MasterName => Settings.Sentinel.MasterName!;

    /// <summary>The setup, or a skipped test when <c>./run up --redis-sentinel</c> was not used.</summary>
    public static async Task<SentinelTopology> OpenAsync()
    {
        var settings = TestServers.RedisSentinel;
        if (settings is null) Assert.Skip("no Redis Sentinel setup: run ./run up --redis-sentinel (./run test and ./run chaos start it)");
        var password = TestServers.Get("REDIS_PASSWORD")!;
        var options = new ConfigurationOptions { CommandMap = CommandMap.Sentinel, Password = password, AbortOnConnectFail = false, ConnectTimeout = 2000, AsyncTimeout = 2000 };
        foreach (var s in settings.Sentinel.Sentinels) options.EndPoints.Add(s.Host, s.Port);
        var sentinels = await ConnectionMultiplexer.ConnectAsync(options);
        int[] ports = [int.Parse(TestServers.Get("REDIS_SENTINEL_PRIMARY_PORT")!), int.Parse(TestServers.Get("REDIS_SENTINEL_REPLICA_PORT")!)];
        var topology = new SentinelTopology(settings, sentinels, password, TestServers.Get("TMPROOT")!, ports);
        // A previous test (or run) may have left a node down or a failover in progress: start from a healthy topology.
        await topology.RestartStoppedNodesAsync();
        await topology.WaitHealthyAsync(TimeSpan.FromSeconds(60));
        return topology;
    }

    /// <summary>A multiplexer in sentinel mode, as an application would open it from redis.yaml.</summary>
    public Task<ConnectionMultiplexer> ConnectAsync() => ConnectionMultiplexer.ConnectAsync(RedisDriverSettings.Build(Settings));

    private IServer[] SentinelServers => _sentinels.GetServers().Where(s => s.IsConnected).ToArray();

    /// <summary>The primary's port as a majority of the connected sentinels report it, or null while they disagree.</summary>
    public async Task<int?> PrimaryPortAsync()
    {
        var votes = new List<int>();
        foreach (var s in SentinelServers)
        {
            try
            {
                if (await s.SentinelGetMasterAddressByNameAsync(MasterName) is IPEndPoint ep) votes.Add(ep.Port);
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                // that sentinel is not answering; the others decide
            }
        }
        var top = votes.GroupBy(v => v).OrderByDescending(g => g.Count()).FirstOrDefault();
        return top is not null && top.Count() >= 2 ? top.Key : null;
    }

    /// <summary>The port the multiplexer currently writes to, or null while it has no connected primary.</summary>
    public static int? MultiplexerPrimary(IConnectionMultiplexer redis) =>
        redis.GetServers().FirstOrDefault(s => s.IsConnected && !s.IsReplica)?.EndPoint is IPEndPoint ep ? ep.Port : null;

    /// <summary>SENTINEL FAILOVER: the sentinels promote the replica without waiting for an agreement that the primary is down.</summary>
    public async Task ForceFailoverAsync() => await SentinelServers[0].SentinelFailoverAsync(MasterName);

    /// <summary>SIGKILL of the primary's process (no shutdown, no last replication); returns its port.</summary>
    public async Task<int> KillPrimaryAsync()
    {
        var port = await PrimaryPortAsync() ?? throw new InvalidOperationException("the sentinels do not agree on a primary");
        var pid = int.Parse((await File.ReadAllTextAsync(Path.Combine(_tmp, $"redis-{port}", "redis.pid"))).Trim());
        using var process = Process.GetProcessById(pid);
        process.Kill();
        await process.WaitForExitAsync();
        return port;
    }

    /// <summary>Starts the node on <paramref name="port"/> again, as a replica of the current primary (as an operator would).</summary>
    public async Task RestartAsReplicaAsync(int port, CancellationToken ct)
    {
        int? primary = null;
        await Poll.UntilAsync(async () => (primary = await PrimaryPortAsync()) is { } p && p != port, "the sentinels to elect a new primary", ct, TimeSpan.FromSeconds(30));
        using var process = Process.Start(new ProcessStartInfo("redis-server")
        {
            ArgumentList = { Path.Combine(_tmp, $"redis-{port}", "redis.conf"), "--replicaof", "127.0.0.1", primary!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        await process.WaitForExitAsync(ct); // daemonizes
    }

    private async Task RestartStoppedNodesAsync()
    {
        foreach (var port in DataPorts)
        {
            using var probe = new System.Net.Sockets.TcpClient();
            try
            {
                await probe.ConnectAsync(IPAddress.Loopback, port);
            }
            catch (System.Net.Sockets.SocketException)
            {
                await RestartAsReplicaAsync(port, CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// Waits until the sentinels agree on a primary, the other node is its replica with the link up, and every
    /// connected sentinel sees that replica as healthy: the state a next failover needs.
    /// </summary>
    public async Task WaitHealthyAsync(TimeSpan bound, CancellationToken ct = default)
    {
        await Poll.UntilAsync(async () =>
        {
            try
            {
                return await HealthyAsync();
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                return false;
            }
        }, "the Sentinel topology to be healthy (a primary, its replica in sync, all sentinels agreeing)", ct, bound);
    }

    private async Task<bool> HealthyAsync()
    {
        {
            if (await PrimaryPortAsync() is not { } primary) return false;
            var replica = DataPorts.Single(p => p != primary);
            if (!await ReplicaInSyncAsync(replica, primary)) return false;
            foreach (var s in SentinelServers)
            {
                var master = ToDictionary(await s.SentinelMasterAsync(MasterName));
                if (master["flags"] != "master" || master["port"] != primary.ToString(System.Globalization.CultureInfo.InvariantCulture)) return false;
                var replicas = (await s.SentinelReplicasAsync(MasterName)).Select(ToDictionary).ToArray();
                if (!replicas.Any(r => r["port"] == replica.ToString(System.Globalization.CultureInfo.InvariantCulture) && r["flags"] == "slave" && r["master-link-status"] == "ok"))
                    return false;
            }
            return true;
        }
    }

    private async Task<bool> ReplicaInSyncAsync(int replica, int primary)
    {
        try
        {
            if (!_direct.TryGetValue(replica, out var direct))
            {
                var options = new ConfigurationOptions
                {
                    Password = _password, AllowAdmin = true, AbortOnConnectFail = false, ConnectTimeout = 1000, AsyncTimeout = 1000,
                    ReconnectRetryPolicy = new LinearRetry(200),
                };
                options.EndPoints.Add("127.0.0.1", replica);
                _direct[replica] = direct = await ConnectionMultiplexer.ConnectAsync(options);
            }
            var info = await direct.GetServer("127.0.0.1", replica).InfoRawAsync("replication");
            return info is not null && info.Contains("role:slave", StringComparison.Ordinal) && info.Contains($"master_port:{primary}", StringComparison.Ordinal)
                && info.Contains("master_link_status:up", StringComparison.Ordinal) && info.Contains("master_sync_in_progress:0", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return false;
        }
    }

    private static Dictionary<string, string> ToDictionary(KeyValuePair<string, string>[] pairs) => pairs.ToDictionary(p => p.Key, p => p.Value);

    public async ValueTask DisposeAsync()
    {
        foreach (var direct in _direct.Values) await direct.DisposeAsync();
        await _sentinels.DisposeAsync();
    }
}
