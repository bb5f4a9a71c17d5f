using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>Classifies Redis failures.</summary>
internal static class RedisErrors
{
    /// <summary>True for the failures that mean "Redis is not answering" rather than "the call is wrong".</summary>
    public static bool IsUnavailable(Exception e) => e is RedisConnectionException or RedisTimeoutException
        || (e is RedisServerException s && (s.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || s.Message.StartsWith("CLUSTERDOWN", StringComparison.Ordinal) || s.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
            || s.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal)
            // A primary demoted by a failover refuses writes until the connection follows the new primary.
            || s.Message.StartsWith("READONLY", StringComparison.Ordinal)));

    /// <summary>
    /// False when <paramref name="e"/> shows the command never reached Redis or was refused before running
    /// (so it wrote nothing); true when it may have run (sent without a reply, a script that failed midway).
    /// </summary>
    public static bool MayHaveRun(Exception e) => e switch
    {
        RedisTimeoutException t => t.Commandstatus is not (CommandStatus.WaitingToBeSent or CommandStatus.WaitingInBacklog),
        RedisConnectionException c => c.CommandStatus is not (CommandStatus.WaitingToBeSent or CommandStatus.WaitingInBacklog),
        RedisServerException => !IsUnavailable(e),
        _ => true,
    };
}
