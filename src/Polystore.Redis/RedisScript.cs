using System.Diagnostics;
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
/// In a cluster, MOVED and ASK are followed by the client (a failover, a moved slot). While the slot of a multi-key
/// call is being migrated, the keys may be split between the two nodes and Redis answers TRYAGAIN without running
/// anything: the call is then sent again after a short pause, for up to <see cref="MigrationRetryBound"/>, so a live
/// reshard is invisible to callers unless one slot's migration takes longer than that.
/// </remarks>
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

    /// <summary>How long a call answered TRYAGAIN (a slot migration in progress) is retried before the error is thrown.</summary>
    internal static readonly TimeSpan MigrationRetryBound = TimeSpan.FromMilliseconds(400);

    private static readonly TimeSpan FirstRetryPause = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan MaxRetryPause = TimeSpan.FromMilliseconds(100);
    private static long s_tryAgainRetries;

    /// <summary>Calls sent again after a TRYAGAIN answer, process-wide (for tests).</summary>
    internal static long TryAgainRetries => Interlocked.Read(ref s_tryAgainRetries);

    /// <summary>Runs the script with <paramref name="keys"/> as <c>KEYS</c> and <paramref name="args"/> as <c>ARGV</c>.</summary>
    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync db, RedisKey[] keys, RedisValue[] args)
    {
        ArgumentNullException.ThrowIfNull(db);
        var started = 0L;
        var pause = FirstRetryPause;
        while (true)
        {
            // One method (one state machine) for both fallbacks: this is every script call's path.
            try
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
            catch (RedisServerException e) when (IsTryAgain(e) && Retry(ref started, ref pause, out var wait))
            {
                await Task.Delay(wait).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The blocking form of <see cref="EvaluateAsync"/>.</summary>
    public RedisResult Evaluate(IDatabase db, RedisKey[] keys, RedisValue[] args)
    {
        ArgumentNullException.ThrowIfNull(db);
        var started = 0L;
        var pause = FirstRetryPause;
        while (true)
        {
            try
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
            catch (RedisServerException e) when (IsTryAgain(e) && Retry(ref started, ref pause, out var wait))
            {
                Thread.Sleep(wait);
            }
        }
    }

    // TRYAGAIN is answered before the script runs, so sending it again can neither lose nor repeat its effects.
    private static bool Retry(ref long started, ref TimeSpan pause, out TimeSpan wait)
    {
        if (started == 0) started = Stopwatch.GetTimestamp();
        wait = pause;
        if (Stopwatch.GetElapsedTime(started) + wait > MigrationRetryBound) return false;
        pause = pause * 2 < MaxRetryPause ? pause * 2 : MaxRetryPause;
        Interlocked.Increment(ref s_tryAgainRetries);
        return true;
    }

    private static bool IsNoScript(RedisServerException e) => e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal);

    private static bool IsTryAgain(RedisServerException e) => e.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal);
}
