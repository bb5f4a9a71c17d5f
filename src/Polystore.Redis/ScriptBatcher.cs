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
    private readonly IConnectionMultiplexer _redis;
    private readonly RedisScript _script;
    private readonly RedisValue[] _shared;
    private readonly int _resultsPerItem;
    private readonly SlotCoalescer<Item> _coalescer;
    private readonly RedisCircuitBreaker _breaker;
    private readonly string _component;

    public ScriptBatcher(IConnectionMultiplexer redis, RedisScript script, RedisValue[] shared, int resultsPerItem, RedisCircuitBreaker breaker, string component)
    {
        _breaker = breaker;
        _component = component;
        _redis = redis;
        _script = script;
        _shared = shared;
        _resultsPerItem = resultsPerItem;
        _coalescer = new SlotCoalescer<Item>(redis, SendAsync, item => item.Slot);
    }

    /// <summary>
    /// Runs one item; the task faults with the Redis exception when the call fails, at once (nothing sent) while the
    /// circuit breaker is open.
    /// </summary>
    public Task<RedisResult[]> RunAsync(RedisKey[] keys, RedisValue[] args)
    {
        if (_breaker.IsOpen) return Task.FromException<RedisResult[]>(_breaker.ShortCircuit(_component));
        var item = new Item(keys, args, SlotOf(keys), fireAndForget: false);
        _coalescer.Enqueue(item);
        return item.Task;
    }

    /// <summary>
    /// Queues one item whose result nobody waits for (its failure is dropped, not thrown). It is queued even while the
    /// circuit breaker is open: it must still follow the calls queued before it (a release after an acquire that may run).
    /// </summary>
    public void Send(RedisKey[] keys, RedisValue[] args) => _coalescer.Enqueue(new Item(keys, args, SlotOf(keys), fireAndForget: true));

    // The slot only matters when batches must be split per slot (cluster, or not known yet).
    private int SlotOf(RedisKey[] keys) => _coalescer.KnownStandalone ? 0 : _redis.HashSlot(keys[0]);

    // Returns what resumes the batch's callers; the coalescer runs it (see SlotCoalescer) and nothing in it can throw.
    private async Task<Action> SendAsync(List<Item> batch)
    {
        var keys = new RedisKey[batch.Sum(i => i.Keys.Length)];
        var args = new RedisValue[_shared.Length + batch.Sum(i => i.Args.Length)];
        _shared.CopyTo(args, 0);
        int k = 0, a = _shared.Length;
        foreach (var item in batch)
        {
            item.Keys.CopyTo(keys, k);
            item.Args.CopyTo(args, a);
            k += item.Keys.Length;
            a += item.Args.Length;
        }
        try
        {
            var result = (RedisResult[])(await _breaker.RunAsync(_script.EvaluateAsync(_redis.GetDatabase(), keys, args)).ConfigureAwait(false))!;
            if (result.Length != batch.Count * _resultsPerItem)
                throw new RedisException($"the batch script returned {result.Length} values for {batch.Count} items");
            return () =>
            {
                for (var i = 0; i < batch.Count; i++)
                    if (!batch[i].FireAndForget) batch[i].TrySetResult(result.AsSpan(i * _resultsPerItem, _resultsPerItem).ToArray());
            };
        }
        catch (Exception e)
        {
            return () =>
            {
                foreach (var item in batch)
                    if (!item.FireAndForget) item.TrySetException(e);
            };
        }
    }

    // A fire-and-forget item is never completed, so no faulted task is left unobserved.
    // Completed by SlotCoalescer, which resumes a batch's callers one after the other on the reply's thread.
    private sealed class Item(RedisKey[] keys, RedisValue[] args, int slot, bool fireAndForget) : TaskCompletionSource<RedisResult[]>
    {
        public RedisKey[] Keys { get; } = keys;

        public RedisValue[] Args { get; } = args;

        public int Slot { get; } = slot;

        public bool FireAndForget { get; } = fireAndForget;
    }
}
