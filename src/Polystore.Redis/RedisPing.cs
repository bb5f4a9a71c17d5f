using System.Net;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>One round trip to each server the application's multiplexer knows (the primary first).</summary>
public static class RedisPing
{
    /// <summary>
    /// Pings every server of <paramref name="multiplexer"/> (standalone, the sentinel-chosen primary and its replicas,
    /// or every cluster node); never throws for an unreachable server and never opens a connection of its own.
    /// </summary>
    /// <remarks>
    /// While the circuit breaker of the connection (shared by the cache, the rate limiter and the locks, see
    /// <see cref="RedisCircuitBreakerOptions"/>) is open or half-open, no server is pinged: every entry is unreachable,
    /// its error says the breaker is open, since when and why, and its details end with "circuit breaker open". A
    /// health check over these pings then reports the store as down (Unhealthy), at once. The breaker's own PING decides
    /// when it closes.
    /// </remarks>
    public static async Task<IReadOnlyList<StorePing>> PingAsync(IConnectionMultiplexer multiplexer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        var servers = multiplexer.GetServers();
        if (servers.Length == 0)
            return [new StorePing(StoreNames.Redis, "-", false, null, null, "no server is configured")];
        // Primaries first, so that "the first entry" is the one that takes writes.
        var ordered = servers.OrderBy(s => s.IsReplica).ToList();
        if (RedisCircuitBreaker.Of(multiplexer).FirstOrDefault(b => b.IsOpen) is { } open)
        {
            open.CountShortCircuit("ping");
            var why = open.Describe();
            return [.. ordered.Select(s => new StorePing(StoreNames.Redis, Format(s.EndPoint), false, null, null, why, $"{Role(s)}, circuit breaker open"))];
        }
        return await Task.WhenAll(ordered.Select(s => PingOneAsync(s, cancellationToken))).ConfigureAwait(false);
    }

    private static async Task<StorePing> PingOneAsync(IServer server, CancellationToken cancellationToken)
    {
        var endpoint = Format(server.EndPoint);
        var role = Role(server);
        try
        {
            // A server not connected is pinged too: the client's answer says why it is down (refused, timed out...).
            var roundTrip = await server.PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            return new StorePing(StoreNames.Redis, endpoint, true, server.Version.ToString(), roundTrip, null, role);
        }
        catch (RedisConnectionException e) when (!server.IsConnected)
        {
            // The innermost exception is the one that says why: a refused TLS certificate's reason sits under the
            // client's "AuthenticationFailure (0-read, 0-sent) on ..." report.
            var innermost = e.InnerException;
            while (innermost?.InnerException is { } deeper) innermost = deeper;
            var cause = innermost is null ? "" : $": {innermost.Message.Split('\n', 2)[0].Trim()}";
            return new StorePing(StoreNames.Redis, endpoint, false, null, null, $"not connected to {endpoint} ({e.FailureType}{cause})", role);
        }
        catch (Exception e) when (e is RedisException or TimeoutException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // StackExchange.Redis messages name endpoints and commands, never the password.
            return new StorePing(StoreNames.Redis, endpoint, false, null, null, e.Message.Split('\n', 2)[0].Trim(), role);
        }
    }

    /// <summary>
    /// Whether <paramref name="ping"/> (one of <see cref="PingAsync"/>'s) is of a server that takes writes: any not
    /// known as a replica or sentinel, so a seed node that was never reached counts as the primary it may be.
    /// </summary>
    internal static bool IsPrimary(StorePing ping) =>
        ping.Details is not { } details || !(details.StartsWith("cluster replica", StringComparison.Ordinal)
            || details.StartsWith("replica", StringComparison.Ordinal) || details.StartsWith("sentinel", StringComparison.Ordinal));

    private static string Role(IServer server) => server.ServerType switch
    {
        ServerType.Cluster => server.IsReplica ? "cluster replica" : "cluster primary",
        ServerType.Sentinel => "sentinel",
        _ => server.IsReplica ? "replica" : "primary",
    };

    internal static string Format(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        IPEndPoint ip => ip.ToString(),
        _ => endPoint.ToString() ?? "?",
    };
}
