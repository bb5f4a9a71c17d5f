using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>Classifies Redis failures.</summary>
internal static class RedisErrors
{
    /// <summary>True for the failures that mean "Redis is not answering" rather than "the call is wrong".</summary>
    public static bool IsUnavailable(Exception e) => e is RedisConnectionException or RedisTimeoutException
        || (e is RedisServerException s && (s.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || s.Message.StartsWith("CLUSTERDOWN", StringComparison.Ordinal) || s.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
            // A primary demoted by a failover refuses writes until the connection follows the new primary.
            || s.Message.StartsWith("READONLY", StringComparison.Ordinal)))
        || IsMigrating(e);

    /// <summary>
    /// True for the answers of a cluster node while a slot is being migrated: TRYAGAIN (the keys of a multi-key call are
    /// split between the two nodes; nothing ran) and a script stopped midway because it created a key that had just
    /// left (a script that deleted a key and wrote it again); the cluster itself is up.
    /// </summary>
    public static bool IsMigrating(Exception e) => e is RedisServerException s
        && (s.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal) || IsScriptStoppedMidMigration(s));

    // Redis 7 wording; the script's writes before that call stay (scripts are not rolled back).
    private static bool IsScriptStoppedMidMigration(RedisServerException s) =>
        s.Message.Contains("Script attempted to access a non local key", StringComparison.Ordinal);

    /// <summary>
    /// False when <paramref name="e"/> shows the command never reached Redis or was refused before running
    /// (so it wrote nothing); true when it may have run (sent without a reply, a script that failed midway).
    /// </summary>
    public static bool MayHaveRun(Exception e) => e switch
    {
        RedisTimeoutException t => t.Commandstatus is not (CommandStatus.WaitingToBeSent or CommandStatus.WaitingInBacklog),
        RedisConnectionException c => c.CommandStatus is not (CommandStatus.WaitingToBeSent or CommandStatus.WaitingInBacklog),
        RedisServerException s => IsScriptStoppedMidMigration(s) || !IsUnavailable(e),
        _ => true,
    };
}
