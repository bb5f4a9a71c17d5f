using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// A Lua script run by its SHA1 (EVALSHA). The SHA1 is computed locally, so no SCRIPT LOAD round trip is
/// needed; when a server answers NOSCRIPT (first use, restart, failover, a new cluster node) the script is
/// sent once with EVAL, which also caches it on that server, and later calls go back to EVALSHA.
/// </summary>
/// <remarks>
/// The script reads its keys from <c>KEYS</c> and its arguments from <c>ARGV</c>, in the order given to
/// <see cref="EvaluateAsync"/>. In a cluster every key of one call must hash to the same slot (share a
/// <c>{hash tag}</c>). Create one instance per script and keep it (a static field): construction hashes the source.
/// </remarks>
public sealed class RedisScript
{
    /// <summary>Prepares <paramref name="source"/> (computes its SHA1; nothing is sent to Redis).</summary>
    public RedisScript(string source)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        Source = source;
        Sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(source));
        Sha1Hex = Convert.ToHexStringLower(Sha1);
    }

    /// <summary>The Lua source.</summary>
    public string Source { get; }

    /// <summary>The SHA1 of <see cref="Source"/> in lowercase hex, as EVALSHA and SCRIPT EXISTS take it.</summary>
    public string Sha1Hex { get; }

    internal byte[] Sha1 { get; }

    /// <summary>Runs the script with <paramref name="keys"/> as <c>KEYS</c> and <paramref name="args"/> as <c>ARGV</c>.</summary>
    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync db, RedisKey[] keys, RedisValue[] args)
    {
        ArgumentNullException.ThrowIfNull(db);
        try
        {
            return await db.ScriptEvaluateAsync(Sha1, keys, args).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (IsNoScript(e))
        {
            return await db.ScriptEvaluateAsync(Source, keys, args).ConfigureAwait(false);
        }
    }

    /// <summary>The blocking form of <see cref="EvaluateAsync"/>.</summary>
    public RedisResult Evaluate(IDatabase db, RedisKey[] keys, RedisValue[] args)
    {
        ArgumentNullException.ThrowIfNull(db);
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
}
