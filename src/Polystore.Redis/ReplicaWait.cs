using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// Runs a script and then <c>WAIT numreplicas timeout</c> on one server, pipelined on its connection: WAIT
/// counts the replicas that acknowledged every write this connection made before it, so the script's writes
/// are covered. Both go to the same server on purpose: were the connection to move to a new primary in
/// between (a failover), a WAIT there would acknowledge nothing of what ran on the old one. On a server that
/// became a replica, WAIT fails, which counts as not acknowledged.
/// </summary>
internal static class ReplicaWait
{
    /// <summary>The script's reply and how many replicas acknowledged it (0 when WAIT failed).</summary>
    public static async Task<(RedisResult Result, long Acknowledged)> EvaluateAsync(
        IConnectionMultiplexer redis, RedisKey routeBy, RedisScript script, RedisKey[] keys, RedisValue[] args, int replicas, long timeoutMs)
    {
        IServer server;
        try
        {
            server = redis.GetServer(routeBy, flags: CommandFlags.DemandMaster);
        }
        catch (InvalidOperationException e)
        {
            // No connected primary right now (mid-failover): unavailable, and nothing was sent.
            throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.DemandMaster, e.Message, e, CommandStatus.WaitingToBeSent);
        }
        var (result, waited) = Send(server, script.Sha1Hex, "EVALSHA", keys, args, replicas, timeoutMs);
        RedisResult reply;
        try
        {
            reply = await result.ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            _ = await AcknowledgedAsync(waited).ConfigureAwait(false);
            (result, waited) = Send(server, script.Source, "EVAL", keys, args, replicas, timeoutMs);
            reply = await result.ConfigureAwait(false);
        }
        return (reply, await AcknowledgedAsync(waited).ConfigureAwait(false));
    }

    /// <summary>
    /// What callers get when the replicas did not acknowledge: "unavailable", and flagged as possibly run, so
    /// the lock is released and the limiter gives its entries back.
    /// </summary>
    public static RedisConnectionException NotAcknowledged(string message) =>
        new(ConnectionFailureType.None, CommandFlags.None, message, null, CommandStatus.Sent);

    private static (Task<RedisResult> Result, Task<RedisResult> Waited) Send(
        IServer server, string script, string command, RedisKey[] keys, RedisValue[] args, int replicas, long timeoutMs)
    {
        var call = new object[2 + keys.Length + args.Length];
        call[0] = script;
        call[1] = keys.Length;
        for (var i = 0; i < keys.Length; i++) call[2 + i] = (string)keys[i]!;
        for (var i = 0; i < args.Length; i++) call[2 + keys.Length + i] = args[i];
        // Both written before either reply is awaited: one round trip, and nothing of ours in between.
        return (server.ExecuteAsync(command, call), server.ExecuteAsync("WAIT", replicas, timeoutMs));
    }

    private static async Task<long> AcknowledgedAsync(Task<RedisResult> waited)
    {
        try
        {
            return (long)await waited.ConfigureAwait(false);
        }
        catch (RedisServerException)
        {
            return 0; // e.g. "WAIT cannot be used with replica instances": the server was demoted
        }
    }
}
