using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Redis.Tests;

/// <summary>One shared multiplexer per private server, as an application would hold them.</summary>
internal static class RedisServers
{
    private static readonly Lazy<ConnectionMultiplexer> StandaloneMux = new(() =>
        ConnectionMultiplexer.Connect(RedisDriverSettings.Build(TestServers.Redis)));

    private static readonly Lazy<ConnectionMultiplexer> ClusterMux = new(() =>
        ConnectionMultiplexer.Connect(RedisDriverSettings.Build(TestServers.RedisCluster
            ?? throw new InvalidOperationException("no Redis Cluster: run ./run up --redis-cluster"))));

    public static IConnectionMultiplexer Standalone => StandaloneMux.Value;

    public static IConnectionMultiplexer Cluster => ClusterMux.Value;

    /// <summary>
    /// For tests about something other than the breaker: the whole suite runs in parallel on a small machine, which
    /// can stall a call past the 1 s default operation timeout and turn a correct run into a timeout.
    /// </summary>
    public static RedisCircuitBreakerOptions PatientBreaker { get; } = new() { OperationTimeout = TimeSpan.FromSeconds(15) };

    /// <summary>"standalone" or "cluster", for theories that run against both.</summary>
    public static IConnectionMultiplexer Get(string kind) => kind == "cluster" ? Cluster : Standalone;

    /// <summary>A multiplexer to a loopback port nothing listens on: every call fails fast as "unavailable".</summary>
    public static ConnectionMultiplexer Unreachable()
    {
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        var port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var options = new ConfigurationOptions { AbortOnConnectFail = false, ConnectTimeout = 500, AsyncTimeout = 500, SyncTimeout = 500 };
        options.EndPoints.Add("127.0.0.1", port);
        return ConnectionMultiplexer.Connect(options);
    }
}
