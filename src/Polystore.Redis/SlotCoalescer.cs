using System.Collections.Concurrent;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// Coalesces concurrent calls into batched script calls: while a batch is on the wire, new items queue
/// and go together in the next one. In a cluster (or before the topology is known) a batch is split by
/// hash slot, because the keys of one script call must share a slot. At most <see cref="MaxFlushers"/>
/// batches are in flight at once. Shared by the rate limiter and <see cref="ScriptBatcher"/>.
/// </summary>
/// <typeparam name="T">A queued call; <paramref name="slotOf"/> gives its hash slot.</typeparam>
internal sealed class SlotCoalescer<T>(IConnectionMultiplexer redis, Func<List<T>, Task> send, Func<T, int> slotOf)
{
    public const int MaxFlushers = 4;
    public const int MaxBatch = 64;

    private readonly ConcurrentQueue<T> _queue = new();
    private readonly Lock _sendOrder = new();
    private int _flushers;
    private int _mode; // 0 = not known yet (treated as cluster: grouping by slot is always safe), 1 = standalone, 2 = cluster

    /// <summary>True once the server is known to be standalone, so callers may skip computing slots.</summary>
    public bool KnownStandalone => Volatile.Read(ref _mode) == 1;

    /// <summary>Queues <paramref name="item"/>; the send callback completes it later.</summary>
    public void Enqueue(T item)
    {
        _queue.Enqueue(item);
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
        var batch = new List<T>(MaxBatch);
        while (true)
        {
            Task? sending = null;
            // Taking a batch and handing it to the multiplexer happen under one lock, so batches reach each
            // server in queue order even with several flushers (a lock release queued before a re-acquire
            // from this process is always sent first).
            lock (_sendOrder)
            {
                while (batch.Count < MaxBatch && _queue.TryDequeue(out var item)) batch.Add(item);
                if (batch.Count > 0)
                    sending = batch.Count == 1 || !IsCluster() ? send(batch) : Task.WhenAll(batch.GroupBy(slotOf).Select(g => send(g.ToList())));
            }
            if (sending is null)
            {
                Interlocked.Decrement(ref _flushers);
                // Lost-wake-up guard: a caller may have enqueued after our last look but seen us still running.
                if (_queue.IsEmpty) return;
                var running = Volatile.Read(ref _flushers);
                if (running >= MaxFlushers || Interlocked.CompareExchange(ref _flushers, running + 1, running) != running) return;
                continue;
            }
            await sending.ConfigureAwait(false);
            batch.Clear();
        }
    }

    private bool IsCluster()
    {
        var mode = Volatile.Read(ref _mode);
        if (mode == 0 && redis.IsConnected)
        {
            mode = redis.GetServers().Any(s => s.IsConnected && s.ServerType == ServerType.Cluster) ? 2 : 1;
            Volatile.Write(ref _mode, mode);
        }
        return mode != 1;
    }
}
