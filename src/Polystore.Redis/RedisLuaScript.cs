using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// A Lua script run by SHA1 (EVALSHA). The SHA1 is computed locally, so no SCRIPT LOAD round trip is
/// needed; when a server answers NOSCRIPT (first use, restart, failover, a new cluster node) the script
/// is sent once with EVAL, which also caches it on that server, and later calls go back to EVALSHA.
/// </summary>
internal sealed class RedisLuaScript
{
    public RedisLuaScript(string source)
    {
        Source = source;
        Sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(source));
        Sha1Hex = Convert.ToHexStringLower(Sha1);
    }

    public string Source { get; }

    public byte[] Sha1 { get; }

    public string Sha1Hex { get; }

    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync db, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            return await db.ScriptEvaluateAsync(Sha1, keys, args).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (IsNoScript(e))
        {
            return await db.ScriptEvaluateAsync(Source, keys, args).ConfigureAwait(false);
        }
    }

    public RedisResult Evaluate(IDatabase db, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            return db.ScriptEvaluate(Sha1, keys, args);
        }
        catch (RedisServerException e) when (IsNoScript(e))
        {
            return db.ScriptEvaluate(Source, keys, args);
        }
    }

    private static bool IsNoScript(RedisServerException e) => e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal);

    /// <summary>True for the failures that mean "Redis is not answering" rather than "the call is wrong".</summary>
    public static bool IsUnavailable(Exception e) => e is RedisConnectionException or RedisTimeoutException
        || (e is RedisServerException s && (s.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || s.Message.StartsWith("CLUSTERDOWN", StringComparison.Ordinal) || s.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
            || s.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal)));
}
