using System.Collections.Concurrent;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// Coalesces concurrent calls into batched script calls: while batches are on the wire, new items queue
/// and go together in the next one. In a cluster (or before the topology is known) a batch is split by
/// hash slot, because the keys of one script call must share a slot. At most <see cref="MaxInFlight"/>
/// batches are on the wire at once, and a batch goes beside others in flight only when at least
/// minConcurrentBatch items wait (fewer wait for a reply and go together). A call made with
/// nothing queued and nothing in flight is sent at once, alone. Shared by the rate limiter and <see cref="ScriptBatcher"/>.
/// </summary>
/// <remarks>
/// When a reply arrives, the batch's callers are resumed one after the other on that thread (one thread
/// hop per batch instead of one per caller), and whatever they queue meanwhile is held back and sent as
/// one batch when the last of them has run. Resuming a caller runs its code up to its next await, so a
/// caller that blocks there delays the callers after it in the same batch; a timer sends what they queued
/// after <see cref="StallCheck"/> so such a caller can never hold the others' calls back for longer. The caller of
/// a batch of one is resumed without holding anything back (there is nobody to gather its next call with).
/// </remarks>
/// <typeparam name="T">A queued call.</typeparam>
/// <param name="redis">The multiplexer (asked once whether the server is a cluster).</param>
/// <param name="send">
/// Sends one batch (items of one slot) and, once the reply is in, returns what completes its callers;
/// the coalescer runs that after the batch has left its in-flight slot.
/// </param>
/// <param name="slotOf">An item's hash slot.</param>
/// <param name="minConcurrentBatch">
/// The fewest waiting items that go as a batch beside others in flight (1 = any; the rate limiter uses
/// <see cref="LimiterConcurrentBatch"/>, so a few callers share one call instead of one call each).
/// </param>
internal sealed class SlotCoalescer<T>(IConnectionMultiplexer redis, Func<List<T>, Task<Action>> send, Func<T, int> slotOf, int minConcurrentBatch = 1)
{
    public const int MaxInFlight = 4;
    public const int MaxBatch = 64;
    public const int LimiterConcurrentBatch = 8;
    private static readonly TimeSpan StallCheck = TimeSpan.FromMilliseconds(2);

    [ThreadStatic] private static SlotCoalescer<T>? t_resuming; // set while this thread resumes callers of this coalescer
    [ThreadStatic] private static int t_resumingBatch;           // how many callers that batch has

    private readonly ConcurrentQueue<T> _queue = new();
    private readonly Lock _sendOrder = new();
    private readonly Lock _guard = new();
    private Timer? _stallTimer;
    private int _resumers; // threads resuming callers now (under _guard)
    private int _inFlight;
    private int _mode; // 0 = not known yet (treated as cluster: grouping by slot is always safe), 1 = standalone, 2 = cluster

    /// <summary>True once the server is known to be standalone, so callers may skip computing slots.</summary>
    public bool KnownStandalone => Volatile.Read(ref _mode) == 1;

    /// <summary>Queues <paramref name="item"/>; the send callback's completion resumes its caller later.</summary>
    public void Enqueue(T item)
    {
        // A caller resumed by a reply queues its next call: it waits for the rest of that batch's callers.
        if (t_resuming == this)
        {
            _queue.Enqueue(item);
            // Nothing in flight means Redis is idle while these callers run: once half of them have queued their next
            // call, those go now and Redis works on them while the other half runs. Two batches then take turns (one
            // on the server while the other's callers run) instead of one batch alternating between the two.
            if (Volatile.Read(ref _inFlight) == 0 && _queue.Count * 2 >= t_resumingBatch && _queue.Count >= minConcurrentBatch) Flush();
            return;
        }
        // Nothing waiting and nothing in flight (a lone caller, or a quiet moment): this call is a batch of one, sent
        // now, without the queue and the batch list.
        if (_queue.IsEmpty && Volatile.Read(ref _inFlight) == 0 && TryTakeSlot())
        {
            _ = SendOneAsync(item);
            return;
        }
        _queue.Enqueue(item);
        Flush();
    }

    // A slot for a new batch: always when none is in flight; beside batches in flight only for a batch of at least
    // minConcurrentBatch, so a few callers can share one call (sent when the reply is in) instead of one call each.
    private bool TryTakeSlot()
    {
        while (true)
        {
            var running = Volatile.Read(ref _inFlight);
            if (running >= MaxInFlight || (running > 0 && minConcurrentBatch > 1 && _queue.Count < minConcurrentBatch)) return false;
            if (Interlocked.CompareExchange(ref _inFlight, running + 1, running) == running) return true;
        }
    }

    // Holds a slot. A batch of one has nobody to gather its caller's next call with: the caller is resumed without
    // holding that call back (no stall timer), so it is sent at once too.
    private async Task SendOneAsync(T item)
    {
        Task<Action>? one = null;
        lock (_sendOrder)
        {
            // Queued items were enqueued before this one: they go first, and this one with them.
            if (_queue.IsEmpty) one = send([item]);
            else _queue.Enqueue(item);
        }
        if (one is null)
        {
            await SendBatchAsync().ConfigureAwait(false);
            return;
        }
        Action resume;
        try
        {
            resume = await one.ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
        resume();
        Flush(); // anything queued while every slot was taken
    }

    /// <summary>Sends queued items while an in-flight slot is free.</summary>
    private void Flush()
    {
        // A batch in flight flushes again when its reply is in.
        if (!_queue.IsEmpty && TryTakeSlot()) _ = SendBatchAsync();
    }

    private async Task SendBatchAsync()
    {
        Task<Action>? one = null;      // the usual case: one script call for the whole batch
        Task<Action[]>? perSlot = null; // a cluster batch spanning several slots
        var batch = new List<T>(Math.Min(MaxBatch, Math.Max(1, _queue.Count)));
        // Taking a batch and handing it to the multiplexer happen under one lock, so batches reach each
        // server in queue order even with several in flight (a lock release queued before a re-acquire
        // from this process is always sent first).
        lock (_sendOrder)
        {
            while (batch.Count < MaxBatch && _queue.TryDequeue(out var item)) batch.Add(item);
            if (batch.Count == 1 || (batch.Count > 1 && !IsCluster())) one = send(batch);
            else if (batch.Count > 1) perSlot = Task.WhenAll(batch.GroupBy(slotOf).Select(g => send(g.ToList())));
        }
        if (one is null && perSlot is null)
        {
            // Another batch took the items first. Look again after leaving the slot: a caller that found every
            // slot taken meanwhile relies on someone flushing its item.
            Interlocked.Decrement(ref _inFlight);
            Flush();
            return;
        }
        Action[] resume;
        try
        {
            resume = one is not null ? [await one.ConfigureAwait(false)] : await perSlot!.ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
        if (batch.Count == 1) resume[0](); // a batch of one: nobody to gather its caller's next call with
        else Resume(resume, batch.Count);
        Flush(); // the callers' next calls, and anything queued while every slot was taken
    }

    private void Resume(Action[] resume, int callers)
    {
        lock (_guard)
        {
            if (_resumers++ == 0)
            {
                _stallTimer ??= new Timer(static s => ((SlotCoalescer<T>)s!).Flush(), this, Timeout.Infinite, Timeout.Infinite);
                _stallTimer.Change(StallCheck, StallCheck);
            }
        }
        var outer = t_resuming;
        var outerBatch = t_resumingBatch;
        t_resuming = this;
        t_resumingBatch = callers;
        try
        {
            foreach (var r in resume) r();
        }
        finally
        {
            t_resuming = outer;
            t_resumingBatch = outerBatch;
            lock (_guard)
            {
                if (--_resumers == 0) _stallTimer!.Change(Timeout.Infinite, Timeout.Infinite);
            }
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
