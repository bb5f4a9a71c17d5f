using System.Net;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>Connects to the configured Redis deployment and reports version and round-trip time.</summary>
public static class RedisPing
{
    /// <summary>Connects, pings, and disconnects; never throws for an unreachable server.</summary>
    public static async Task<StorePing> PingAsync(RedisSettings settings, CancellationToken cancellationToken = default)
    {
        var options = RedisDriverSettings.Build(settings);
        var endpoint = string.Join(",", options.EndPoints.Select(Format));
        var secrets = new[] { options.Password, settings.Connection.Password, settings.Sentinel.Password };
        var log = new StringWriter();
        try
        {
            var muxer = await ConnectionMultiplexer.ConnectAsync(options, log).WaitAsync(cancellationToken).ConfigureAwait(false);
            await using (muxer.ConfigureAwait(false))
            {
                if (!muxer.IsConnected)
                    return new StorePing(StoreNames.Redis, endpoint, false, null, null, $"could not connect to {endpoint} within {options.ConnectTimeout} ms");
                var roundTrip = await muxer.GetDatabase().PingAsync().ConfigureAwait(false);
                var servers = muxer.GetServers();
                var primary = servers.FirstOrDefault(s => s.IsConnected && !s.IsReplica) ?? servers[0];
                var mode = settings.Cluster.Enabled ? $"cluster, {servers.Count(s => !s.IsReplica)} primaries"
                    : settings.Sentinel.Enabled ? $"sentinel, primary {Format(primary.EndPoint)}"
                    : $"standalone, db {options.DefaultDatabase ?? 0}";
                return new StorePing(StoreNames.Redis, endpoint, true, primary.Version.ToString(), roundTrip, null, mode);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException or OperationCanceledException)
        {
            return new StorePing(StoreNames.Redis, endpoint, false, null, null, Redactor.Redact(FirstLine(e.Message), secrets));
        }
    }

    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();

    internal static string Format(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        IPEndPoint ip => ip.ToString(),
        _ => endPoint.ToString() ?? "?",
    };
}
