using System.Text;
using StackExchange.Redis;

namespace Polystore.Redis.Caching;

/// <summary>
/// Bulk deletion for <see cref="RedisTieredCache"/>: keys matching a glob are found with SCAN on every primary
/// (never KEYS; in a cluster, every node whose ROLE is master), the members of a tag set with SSCAN, and both are
/// replaced with tombstones (see <see cref="L2Cache.RemoveAsync(string)"/>) in batches of <see cref="Batch"/>, split by
/// hash slot in a cluster. Each round trip (a SCAN page, a batch of tombstones) is bounded by the
/// operation timeout, and nothing starts while the circuit breaker is open.
/// </summary>
internal sealed class CacheKeyRemover(IConnectionMultiplexer redis, L2Cache l2)
{
    private readonly RedisCircuitBreaker _breaker = l2.Breaker;

    private const int Batch = 500;

    /// <summary><paramref name="literal"/> with the Redis glob characters escaped, to match itself only.</summary>
    public static string EscapeGlob(string literal)
    {
        var sb = new StringBuilder(literal.Length + 8);
        foreach (var c in literal)
        {
            if (c is '*' or '?' or '[' or ']' or '\\') sb.Append('\\');
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>Removes every entry whose key matches the glob <paramref name="pattern"/>; returns how many there were.</summary>
    public async Task<long> RemoveMatchingAsync(string pattern, CancellationToken cancellationToken)
    {
        if (_breaker.IsOpen) throw _breaker.ShortCircuit(L2Cache.Component, "nothing was removed");
        var db = redis.GetDatabase();
        long removed = 0;
        // In a cluster every primary holds a share of the keyspace, so each one is scanned.
        foreach (var server in await PrimariesAsync().ConfigureAwait(false))
        {
            var batch = new List<RedisKey>(Batch);
            // KeysAsync pages with SCAN (never KEYS) on every Redis since 2.8.
            await foreach (var key in Bounded(server.KeysAsync(db.Database, pattern, Batch), cancellationToken).ConfigureAwait(false))
            {
                batch.Add(key);
                if (batch.Count == Batch)
                {
                    removed += await RemoveAsync(db, batch).ConfigureAwait(false);
                    batch.Clear();
                }
            }
            removed += await RemoveAsync(db, batch).ConfigureAwait(false);
        }
        return removed;
    }

    /// <summary>
    /// The servers that hold keys now. In a cluster the client learns of a failover late (from MOVED replies and its
    /// periodic refresh, and only once it reconnects after a crash), so each node's own ROLE decides: the replicas
    /// promoted a moment ago are scanned, the masters demoted meanwhile are not.
    /// </summary>
    private async Task<IReadOnlyList<IServer>> PrimariesAsync()
    {
        var connected = redis.GetServers().Where(s => s.IsConnected).ToList();
        if (!connected.Any(s => s.ServerType == ServerType.Cluster)) return [.. connected.Where(s => !s.IsReplica)];
        var roles = await Task.WhenAll(connected.Select(async s =>
        {
            try
            {
                return (await _breaker.RunAsync(s.RoleAsync()).ConfigureAwait(false)).Value == "master";
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                return !s.IsReplica; // no answer: the client's last view of it
            }
        })).ConfigureAwait(false);
        return [.. connected.Where((_, i) => roles[i])];
    }

    /// <summary>Removes every entry listed in the set <paramref name="tagKey"/>, then unlinks the set; returns how many listed entries there were.</summary>
    public async Task<long> RemoveTaggedAsync(RedisKey tagKey, CancellationToken cancellationToken)
    {
        if (_breaker.IsOpen) throw _breaker.ShortCircuit(L2Cache.Component, "nothing was removed");
        var db = redis.GetDatabase();
        var batch = new List<RedisKey>(Batch);
        long removed = 0;
        await foreach (var member in Bounded(db.SetScanAsync(tagKey, pageSize: Batch), cancellationToken).ConfigureAwait(false))
        {
            batch.Add((RedisKey)(byte[])member!);
            if (batch.Count == Batch)
            {
                removed += await RemoveAsync(db, batch).ConfigureAwait(false);
                batch.Clear();
            }
        }
        removed += await RemoveAsync(db, batch).ConfigureAwait(false);
        await _breaker.RunAsync(db.ExecuteAsync("UNLINK", tagKey), cancellationToken).ConfigureAwait(false);
        return removed;
    }

    /// <summary>
    /// <paramref name="items"/> with each step that waits for a page bounded by the operation timeout. A step given up
    /// leaves its enumerator behind undisposed: disposing it with a page still pending is not allowed.
    /// </summary>
    private async IAsyncEnumerable<T> Bounded<T>(IAsyncEnumerable<T> items, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var e = items.GetAsyncEnumerator(cancellationToken);
        var pending = false;
        try
        {
            while (true)
            {
                var next = e.MoveNextAsync();
                bool more;
                if (next.IsCompleted) more = await next.ConfigureAwait(false);
                else
                {
                    pending = true;
                    more = await _breaker.RunAsync(next.AsTask(), cancellationToken).ConfigureAwait(false);
                    pending = false;
                }
                if (!more) yield break;
                yield return e.Current;
            }
        }
        finally
        {
            if (!pending) await e.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<long> RemoveAsync(IDatabaseAsync db, List<RedisKey> keys)
    {
        if (keys.Count == 0) return 0;
        // A multi-key script must stay inside one slot in a cluster: group the batch by slot.
        var groups = redis.GetServers().Any(s => s.ServerType == ServerType.Cluster)
            ? keys.GroupBy(k => redis.HashSlot(k)).Select(g => g.ToArray())
            : [keys.ToArray()];
        var tombstone = CacheEntryFormat.Tombstone();
        var tasks = groups.Select(g => l2.RemoveAsync(db, g, tombstone)).ToArray();
        await _breaker.RunAsync(Task.WhenAll(tasks)).ConfigureAwait(false);
        return tasks.Sum(t => (long)t.Result);
    }
}
