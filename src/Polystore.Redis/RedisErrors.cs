using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>Classifies Redis failures.</summary>
internal static class RedisErrors
{
    /// <summary>True for the failures that mean "Redis is not answering" rather than "the call is wrong".</summary>
    public static bool IsUnavailable(Exception e) => e is RedisConnectionException or RedisTimeoutException
        || (e is RedisServerException s && (s.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || s.Message.StartsWith("CLUSTERDOWN", StringComparison.Ordinal) || s.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
            || s.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal)));
}
