using System.Collections.Concurrent;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// Coalesces concurrent invocations of a "batch" script: while a call is on the wire, new items queue
/// and go together in the next call (grouped by hash slot when the server is a cluster). The script gets
/// KEYS as the items' keys one after the other, ARGV as the shared arguments followed by the items'
/// arguments, and returns <c>resultsPerItem</c> values per item, in order. Items run one after the other
/// inside one atomic script, so each keeps the semantics of a call of its own.
/// </summary>
internal sealed class ScriptBatcher
{
    private const int MaxFlushers = 4;
    private const int MaxBatch = 64;

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisLuaScript _script;
    private readonly RedisValue[] _shared;
    private readonly int _resultsPerItem;
    private readonly ConcurrentQueue<Item> _queue = new();
    private int _flushers;
    private int _mode; // 0 = unknown (group by slot: always safe), 1 = standalone, 2 = cluster

    public ScriptBatcher(IConnectionMultiplexer redis, RedisLuaScript script, RedisValue[] shared, int resultsPerItem)
    {
        _redis = redis;
        _script = script;
        _shared = shared;
        _resultsPerItem = resultsPerItem;
    }

    /// <summary>Runs one item; the task faults with the Redis exception when the call fails.</summary>
    public Task<RedisResult[]> RunAsync(RedisKey[] keys, RedisValue[] args)
    {
        var item = new Item(keys, args, _redis.HashSlot(keys[0]));
        _queue.Enqueue(item);
        StartFlusherIfNeeded();
        return item.Task;
    }

    private void StartFlusherIfNeeded()
    {
        while (true)
        {
            var running = Volatile.Read(ref _flushers);
            if (running >= MaxFlushers) return; // a running flusher re-checks the queue before it stops
            if (Interlocked.CompareExchange(ref _flushers, running + 1, running) == running)
            {
                _ = FlushAsync();
                return;
            }
        }
    }

    private async Task FlushAsync()
    {
        var batch = new List<Item>(MaxBatch);
        while (true)
        {
            while (batch.Count < MaxBatch && _queue.TryDequeue(out var item)) batch.Add(item);
            if (batch.Count == 0)
            {
                Interlocked.Decrement(ref _flushers);
                // Lost-wake-up guard: a caller may have enqueued after our last look but seen us still running.
                if (_queue.IsEmpty) return;
                var running = Volatile.Read(ref _flushers);
                if (running >= MaxFlushers || Interlocked.CompareExchange(ref _flushers, running + 1, running) != running) return;
                continue;
            }
            if (batch.Count == 1 || !IsCluster()) await SendAsync(batch).ConfigureAwait(false);
            else await Task.WhenAll(batch.GroupBy(i => i.Slot).Select(g => SendAsync(g.ToList()))).ConfigureAwait(false);
            batch.Clear();
        }
    }

    private bool IsCluster()
    {
        var mode = Volatile.Read(ref _mode);
        if (mode == 0 && _redis.IsConnected)
        {
            mode = _redis.GetServers().Any(s => s.IsConnected && s.ServerType == ServerType.Cluster) ? 2 : 1;
            Volatile.Write(ref _mode, mode);
        }
        return mode != 1;
    }

    private async Task SendAsync(List<Item> batch)
    {
        var keys = new List<RedisKey>(batch.Count * batch[0].Keys.Length);
        var args = new List<RedisValue>(_shared.Length + (batch.Count * batch[0].Args.Length));
        args.AddRange(_shared);
        foreach (var item in batch)
        {
            keys.AddRange(item.Keys);
            args.AddRange(item.Args);
        }
        try
        {
            var result = (RedisResult[])(await _script.EvaluateAsync(_redis.GetDatabase(), [.. keys], [.. args]).ConfigureAwait(false))!;
            for (var i = 0; i < batch.Count; i++) batch[i].TrySetResult(result.AsSpan(i * _resultsPerItem, _resultsPerItem).ToArray());
        }
        catch (Exception e)
        {
            foreach (var item in batch) item.TrySetException(e);
        }
    }

    private sealed class Item(RedisKey[] keys, RedisValue[] args, int slot)
        : TaskCompletionSource<RedisResult[]>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public RedisKey[] Keys { get; } = keys;

        public RedisValue[] Args { get; } = args;

        public int Slot { get; } = slot;
    }
}
