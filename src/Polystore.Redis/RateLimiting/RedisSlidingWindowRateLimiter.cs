using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Polystore.Redis.RateLimiting;

/// <summary>
/// An exact sliding-log rate limiter: every admitted decision is an entry in a sorted set scored with
/// Redis server time (one entry whatever its weight), and a decision is one atomic Lua script. Works on
/// standalone and cluster (every key of a limiter key shares a hash tag).
/// </summary>
public sealed class RedisSlidingWindowRateLimiter
{
    private readonly IConnectionMultiplexer _redis;
    private readonly RedisValue _window;
    private readonly RedisValue _limit;
    private readonly long _waitMs;
    private readonly string _tagStart;
    // Names this instance's entries (with the batch number and the position in the batch), so the permits of
    // a decision its caller never received can be given back. Random, so two processes never share names.
    private readonly string _instance = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
    private readonly RedisValue _instanceArg;
    private long _batches;
    private long _decisionsSent;
    private long _permitsGivenBack;
    private int _givingBack;
    private const int MaxGivingBack = 65_536;
    private static readonly TimeSpan MaxGiveBackPause = TimeSpan.FromSeconds(2);
    // Concurrent callers are coalesced: while a batch is on the wire, new calls queue up and go together
    // in the next script call (per hash slot in a cluster). Each decision is still exact and atomic;
    // batching only removes per-call overhead.
    private readonly SlotCoalescer<Pending> _coalescer;
    private readonly ScriptBatcher _giveBack;
    private readonly RedisCircuitBreaker _breaker;
    private readonly RememberedDenials _denials;

    /// <summary>Creates a limiter over <paramref name="redis"/>.</summary>
    /// <param name="redis">The application's connection.</param>
    /// <param name="options">Limits, keys, failure mode and circuit breaker.</param>
    /// <param name="loggerFactory">Where the connection's circuit breaker logs its state changes; null = nowhere.</param>
    public RedisSlidingWindowRateLimiter(IConnectionMultiplexer redis, RedisSlidingWindowOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        _redis = redis;
        Options = options.Validated();
        _breaker = RedisCircuitBreaker.For(redis, Options.CircuitBreaker, loggerFactory);
        _window = (long)(Options.Window.Ticks / TimeSpan.TicksPerMicrosecond);
        _limit = Options.PermitLimit;
        _waitMs = (long)Math.Ceiling(Options.ReplicaWaitTimeout.TotalMilliseconds);
        _tagStart = RedisKeys.TagStart(Options.KeyPrefix);
        _instanceArg = _instance;
        _denials = new RememberedDenials(Options.RememberDenialsFor);
        _coalescer = new SlotCoalescer<Pending>(redis, SendAsync, p => p.Slot, SlotCoalescer<Pending>.LimiterConcurrentBatch);
        _giveBack = new ScriptBatcher(redis, SlidingWindowScript.Release, [], resultsPerItem: 1, _breaker, Component);
    }

    /// <summary>The validated options.</summary>
    public RedisSlidingWindowOptions Options { get; }

    /// <summary>
    /// The decision script, for tools that call it directly (such as <c>redis-benchmark</c> with EVALSHA of
    /// <see cref="RedisScript.Sha1Hex"/>). KEYS: one <c>{prefix:key}:log</c> per decision; ARGV: the window in
    /// µs, the permit limit, the permits requested per key, then optionally an instance id and a batch number
    /// that name the entries (without them, the server time does).
    /// </summary>
    public static RedisScript Script => SlidingWindowScript.Script;

    /// <summary>Decisions sent to Redis by this instance (for tests and benchmarks).</summary>
    internal long DecisionsSent => Interlocked.Read(ref _decisionsSent);

    /// <summary>Script calls sent by this instance, each carrying one batch of decisions (for tests).</summary>
    internal long BatchesSent => Interlocked.Read(ref _batches);

    /// <summary>Decisions answered from a remembered denial, without a round trip (for tests and benchmarks).</summary>
    internal long DecisionsAnsweredLocally => _denials.Answered;

    /// <summary>Keys with a remembered denial (for tests).</summary>
    internal int RememberedDenialCount => _denials.Count;

    /// <summary>Permits Redis gave back because their caller never received the decision (for tests).</summary>
    internal long PermitsGivenBack => Interlocked.Read(ref _permitsGivenBack);

    /// <summary>
    /// Tries to take <paramref name="permits"/> permits for <paramref name="key"/> (0 only asks whether one is
    /// free), in one round trip shared with the other calls on the wire. The cost in Redis does not depend on
    /// <paramref name="permits"/>: a decision is one entry carrying its weight.
    /// </summary>
    /// <remarks>
    /// A token cancelled before the call returns a cancelled task and sends nothing. Cancelling later ends the
    /// wait at once; a decision already on its way is still taken by Redis, and if it admitted, its permits are
    /// given back when the reply comes in (nobody received them). The same holds when the call fails after it
    /// may have run (a timeout, a connection lost with the call in flight) and the caller was not told
    /// "allowed": the permits are given back once Redis answers again. Giving back is one more script call,
    /// retried while Redis does not answer, for at most a window (then the entries have left anyway), for at
    /// most 65,536 entries at a time; past that, the permits stay taken until they leave the window. Each
    /// permit given back is counted in <see cref="RedisMetrics.RateLimitGivenBack"/> (when Redis confirms it).
    /// <para>A denial is remembered for the key and weight until the permits it waits for are free, at most
    /// <see cref="RedisSlidingWindowOptions.RememberDenialsFor"/>: calls in that time are denied at once, without a
    /// round trip and whether or not Redis answers.</para>
    /// <para>While the connection's circuit breaker is open (see <see cref="RedisSlidingWindowOptions.CircuitBreaker"/>) the
    /// call does not reach Redis: it answers at once as <see cref="RedisSlidingWindowOptions.OnRedisFailure"/> says, and
    /// with <see cref="RedisFailureMode.Throw"/> fails with a <see cref="RedisConnectionException"/> that says the breaker is open.</para>
    /// </remarks>
    public ValueTask<RateLimitDecision> TryAcquireAsync(string key, int permits = 1, CancellationToken cancellationToken = default)
    {
        if (!RateLimitTelemetry.Observed) return DecideAsync(key, permits, cancellationToken);
        Validate(key, permits);
        return DecideObservedAsync(key, permits, cancellationToken);
    }

    // The decision inside a rate_limit span, counted; only while someone listens.
    private async ValueTask<RateLimitDecision> DecideObservedAsync(string key, int permits, CancellationToken cancellationToken)
    {
        using var activity = RateLimitTelemetry.Start(Options.KeyPrefix, permits);
        try
        {
            var decision = await DecideAsync(key, permits, cancellationToken).ConfigureAwait(false);
            RateLimitTelemetry.Decided(activity, Options.KeyPrefix, decision);
            return decision;
        }
        catch (Exception e)
        {
            RedisTelemetry.Fail(activity, e);
            throw;
        }
    }

    private ValueTask<RateLimitDecision> DecideAsync(string key, int permits, CancellationToken cancellationToken)
    {
        Validate(key, permits);
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<RateLimitDecision>(cancellationToken);
        // A key known to be full is denied here, also while Redis is unreachable: that is knowledge, not a guess.
        if (_denials.Enabled && _denials.TryAnswer(key, permits, out var remembered)) return new ValueTask<RateLimitDecision>(remembered);
        if (_breaker.IsOpen) return ShortCircuited();
        RedisKey log = RedisKeys.Key(_tagStart, key, LogSuffix);
        // The slot only matters when batches must be split per slot (cluster, or not known yet).
        var pending = new Pending(key, log, permits, _coalescer.KnownStandalone ? 0 : _redis.HashSlot(log));
        if (cancellationToken.CanBeCanceled)
        {
            pending.Registration = cancellationToken.UnsafeRegister(static (p, ct) => ((Pending)p!).TrySetCanceled(ct), pending);
            if (pending.Task.IsCompleted) return new ValueTask<RateLimitDecision>(pending.Task);
        }
        _coalescer.Enqueue(pending);
        return new ValueTask<RateLimitDecision>(pending.Task);
    }

    // Returns what resumes the batch's callers; the coalescer runs it (see SlotCoalescer) and nothing in it can throw.
    private async Task<Action> SendAsync(List<Pending> batch)
    {
        // A caller that gave up before its decision left gets nothing sent.
        batch.RemoveAll(static p => p.Task.IsCompleted);
        if (batch.Count == 0) return static () => { };
        var number = Interlocked.Increment(ref _batches);
        var keys = new RedisKey[batch.Count];
        var args = new RedisValue[batch.Count + 4];
        args[0] = _window;
        args[1] = _limit;
        for (var i = 0; i < batch.Count; i++)
        {
            var p = batch[i];
            p.Batch = number;
            p.Position = i + 1;
            keys[i] = p.Log;
            args[i + 2] = p.Permits;
        }
        args[batch.Count + 2] = _instanceArg;
        args[batch.Count + 3] = number;
        Interlocked.Add(ref _decisionsSent, batch.Count);
        var sentAt = System.Diagnostics.Stopwatch.GetTimestamp();
        RateLimitDecision[] decisions;
        bool[]? wrongType = null;
        RedisConnectionException? unacknowledged = null;
        try
        {
            RedisResult[] result;
            long acknowledged = 0;
            if (Options.WaitForReplicas > 0)
            {
                (var reply, acknowledged) = await _breaker.RunAsync(ReplicaWait.EvaluateAsync(
                    _redis, keys[0], SlidingWindowScript.Script, keys, args, Options.WaitForReplicas, _waitMs)).ConfigureAwait(false);
                result = (RedisResult[])reply!;
            }
            else result = (RedisResult[])(await _breaker.RunAsync(SlidingWindowScript.Script.EvaluateAsync(_redis.GetDatabase(), keys, args)).ConfigureAwait(false))!;
            decisions = new RateLimitDecision[batch.Count];
            var at = 1;
            for (var i = 0; i < decisions.Length; i++)
            {
                if ((long)result[at] == WrongTypeFlag)
                {
                    (wrongType ??= new bool[batch.Count])[i] = true;
                    at += 4;
                }
                else decisions[i] = Parse(result, ref at);
            }
            if (acknowledged < Options.WaitForReplicas)
                unacknowledged = ReplicaWait.NotAcknowledged(
                    $"{acknowledged} of {Options.WaitForReplicas} replicas acknowledged the rate-limit admissions within {_waitMs} ms");
        }
        catch (Exception e)
        {
            // The script may have run even so (a timeout, or a connection lost after the call was written), so
            // whatever it admitted for callers who were not told "allowed" is given back.
            var unavailable = RedisErrors.IsUnavailable(e);
            var mayHaveRun = RedisErrors.MayHaveRun(e);
            return () =>
            {
                List<int>? giveBack = null;
                for (var i = 0; i < batch.Count; i++)
                {
                    var p = batch[i];
                    var admitted = false;
                    if (!unavailable) p.TrySetException(e);
                    else admitted = AnswerWithFallback(p, e);
                    p.Registration.Unregister();
                    if (mayHaveRun && !admitted && p.Permits > 0) (giveBack ??= []).Add(i);
                }
                GiveBack(batch, giveBack, null, "failed");
            };
        }
        return () =>
        {
            List<int>? cancelled = null;
            List<int>? notAcknowledged = null;
            for (var i = 0; i < decisions.Length; i++)
            {
                var p = batch[i];
                var decision = decisions[i];
                if (wrongType?[i] == true)
                {
                    // Only this key is broken: the others of the batch were decided as usual.
                    p.TrySetException(new RedisServerException(RedisErrorKind.WrongType, CommandFlags.None,
                        $"WRONGTYPE the rate-limit log {p.Log} holds a value that is not a sorted set (something else wrote it); no decision was taken"));
                    p.Registration.Unregister();
                }
                else if (unacknowledged is not null && decision.Allowed && p.Permits > 0)
                {
                    // An admission the replicas did not acknowledge may vanish in a failover and be admitted again:
                    // answered as Redis being unavailable, its entry given back. Denials and looks wrote nothing to lose.
                    var admitted = AnswerWithFallback(p, unacknowledged);
                    p.Registration.Unregister();
                    if (!admitted) (notAcknowledged ??= []).Add(i);
                }
                else
                {
                    // Remembered before the caller resumes, so its next call already finds it.
                    if (_denials.Enabled && !decision.Allowed) _denials.Remember(p.Key, p.Permits, decision, sentAt);
                    if (p.TrySetResult(decision)) p.Registration.Unregister();
                    else if (decision.Allowed && p.Permits > 0) (cancelled ??= []).Add(i); // cancelled while on the wire
                }
            }
            GiveBack(batch, cancelled, decisions, "cancelled");
            GiveBack(batch, notAcknowledged, decisions, "failed");
        };
    }

    /// <summary>
    /// Gives back the entries of <paramref name="batch"/> at <paramref name="indices"/>. The script names the first
    /// decision of a batch admitted on a key with a given weight after the batch, and later ones by their position
    /// (see <see cref="EntryName"/>); <paramref name="decisions"/> tell which that was, when known.
    /// </summary>
    private void GiveBack(List<Pending> batch, List<int>? indices, RateLimitDecision[]? decisions, string reason)
    {
        if (indices is null) return;
        // Built once per give-back, not per decision: the batch's keys and weights, what was admitted, what goes back.
        var entries = decisions is null ? null : batch.ConvertAll(b => (b.Log, b.Permits));
        var admitted = decisions?.Select(d => d.Allowed).ToArray();
        var givenBack = indices.ToHashSet();
        foreach (var i in indices)
        {
            var p = batch[i];
            var batchName = EntryName(_instance, p.Batch, p.Position, p.Permits, byPosition: false);
            var positionName = EntryName(_instance, p.Batch, p.Position, p.Permits, byPosition: true);
            if (decisions is not null)
            {
                var byPosition = NamedByPosition(entries!, admitted!, i);
                if (!Start(p, byPosition ? positionName : batchName, reason)) return;
                continue;
            }
            // Which decisions were admitted is unknown: the name by position is this decision's if it was; the
            // batch's name may be that of any decision admitted on this key with this weight, so it goes only
            // when all of them go.
            if (!Start(p, positionName, reason)) return;
            var all = true;
            for (var j = 0; j < batch.Count && all; j++) all = batch[j].Log != p.Log || batch[j].Permits != p.Permits || givenBack.Contains(j);
            if (all && !Start(p, batchName, reason)) return;
        }
    }

    /// <summary>
    /// The name <see cref="SlidingWindowScript.Script"/> gives an admitted entry: <c>instance-batch</c>, with
    /// <c>*permits</c> appended for several permits; when an earlier decision of the batch on the same key took that
    /// name (same weight), <c>instance-batch.position</c> (<paramref name="byPosition"/>), with the same suffix.
    /// </summary>
    internal static string EntryName(string instance, long batch, int position, int permits, bool byPosition)
    {
        var name = byPosition
            ? string.Create(CultureInfo.InvariantCulture, $"{instance}-{batch}.{position}")
            : string.Create(CultureInfo.InvariantCulture, $"{instance}-{batch}");
        return permits > 1 ? string.Create(CultureInfo.InvariantCulture, $"{name}*{permits}") : name;
    }

    /// <summary>
    /// Whether the script named the entry of admitted decision <paramref name="i"/> by its position: when an earlier
    /// decision of the batch was admitted on the same key with the same weight (and so took the batch's name).
    /// </summary>
    internal static bool NamedByPosition(IReadOnlyList<(RedisKey Log, int Permits)> batch, IReadOnlyList<bool> admitted, int i)
    {
        for (var j = 0; j < i; j++)
            if (admitted[j] && batch[j].Log == batch[i].Log && batch[j].Permits == batch[i].Permits) return true;
        return false;
    }

    private bool Start(Pending p, string entry, string reason)
    {
        // Bounded: past this many, an entry nobody received just leaves with the window.
        if (Interlocked.Increment(ref _givingBack) > MaxGivingBack)
        {
            Interlocked.Decrement(ref _givingBack);
            return false;
        }
        _ = GiveBackAsync(p.Key, p.Log, entry, reason);
        return true;
    }

    private async Task GiveBackAsync(string key, RedisKey log, string entry, string reason)
    {
        // Most entries to give back come from a stalled or unreachable Redis, so the call is retried until Redis
        // answers, but not past a window: by then the entry has left anyway. It goes out after the decision on the
        // same connection, so it cannot overtake it; a retry after a give-back that did run finds nothing to remove.
        var started = Stopwatch.GetTimestamp();
        var pause = TimeSpan.FromMilliseconds(50);
        try
        {
            while (true)
            {
                try
                {
                    var permits = (long)(await _giveBack.RunAsync([log], [entry]).ConfigureAwait(false))[0];
                    if (permits == 0) return;
                    // Room was made: a denial remembered since must not outlive it.
                    _denials.Forget(key);
                    Interlocked.Add(ref _permitsGivenBack, permits);
                    RedisMetrics.RateLimitGivenBackCounter.Add(permits, new KeyValuePair<string, object?>("reason", reason));
                    return;
                }
                catch (Exception e) when (RedisErrors.IsUnavailable(e) && Stopwatch.GetElapsedTime(started) + pause < Options.Window)
                {
                    await Task.Delay(pause).ConfigureAwait(false);
                    pause = pause * 2 < MaxGiveBackPause ? pause * 2 : MaxGiveBackPause;
                }
            }
        }
        catch (Exception)
        {
            // Best effort: the entry then leaves with the window, as any admission does.
        }
        finally
        {
            Interlocked.Decrement(ref _givingBack);
        }
    }

    // Completed by SlotCoalescer, which resumes a batch's callers one after the other on the reply's thread,
    // or by the caller's token (then the decision, if already sent, is given back when it comes in).
    private sealed class Pending(string key, RedisKey log, int permits, int slot) : TaskCompletionSource<RateLimitDecision>
    {
        public string Key { get; } = key;

        public RedisKey Log { get; } = log;

        public int Permits { get; } = permits;

        public int Slot { get; } = slot;

        public CancellationTokenRegistration Registration;

        public long Batch;

        public int Position;
    }

    /// <summary>
    /// This limiter as a <see cref="RateLimiter"/> over one fixed key (for ASP.NET Core's middleware, for
    /// <see cref="PartitionedRateLimiter.Create{TResource, TPartitionKey}"/> or any RateLimiter consumer).
    /// </summary>
    /// <remarks>
    /// <para><see cref="RateLimiter.AttemptAcquire"/> never waits on the network and never admits: only Redis can
    /// decide, and a synchronous round trip would hold a request thread (ASP.NET Core's middleware calls it
    /// first on every request). It returns a lease that is not acquired, carries no RetryAfter and says why in
    /// <see cref="MetadataName.ReasonPhrase"/>; the middleware then calls <see cref="RateLimiter.AcquireAsync"/>,
    /// which takes the decision. Such a lease is not counted in the statistics.</para>
    /// <para><see cref="RateLimiter.AcquireAsync"/> with permits: one decision, no queue; a denied lease carries
    /// RetryAfter. With 0 permits it completes once a permit is free (as the in-box limiters do), asking Redis
    /// again when the entry that frees one leaves the window, not in a loop; while Redis is unavailable it
    /// completes at once with the <see cref="RedisSlidingWindowOptions.OnRedisFailure"/> decision.</para>
    /// <para>Statistics are this adapter's own: its leases, and the permits left as of its last decision
    /// (other processes share the window in Redis). <see cref="RateLimiter.IdleDuration"/> is null while a call
    /// is in progress and while permits it admitted may still be in the window, so
    /// <see cref="PartitionedRateLimiter.Create{TResource, TPartitionKey}"/> only ever drops idle partitions.
    /// Disposing completes waiting 0-permit calls with a lease that is not acquired; calls after it throw
    /// <see cref="ObjectDisposedException"/>. It never touches this limiter or Redis.</para>
    /// </remarks>
    public RateLimiter ForKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new RedisKeyRateLimiter(this, key);
    }

    /// <summary>
    /// This limiter as a <see cref="PartitionedRateLimiter{TResource}"/>: each resource maps to a Redis key
    /// (any string, the empty one included). Acquiring behaves as <see cref="ForKey"/> does; statistics are kept
    /// per key, and a key's statistics are dropped once it has been idle for a window.
    /// </summary>
    public PartitionedRateLimiter<TResource> Partitioned<TResource>(Func<TResource, string> keySelector)
    {
        ArgumentNullException.ThrowIfNull(keySelector);
        return new RedisPartitionedRateLimiter<TResource>(this, keySelector);
    }

    private const string LogSuffix = ":log";

    internal static string LogKey(string prefix, string key) => RedisKeys.Tagged(prefix, key, LogSuffix);

    private void Validate(string key, int permits)
    {
        // Any string is a key, the empty one included: the hash tag around it keeps each key its own.
        ArgumentNullException.ThrowIfNull(key);
        RedisKeys.ValidateUtf16(key, nameof(key));
        if (permits < 0 || permits > Options.PermitLimit)
            throw new ArgumentOutOfRangeException(nameof(permits), permits, $"permits must be between 0 and the permit limit {Options.PermitLimit}.");
    }

    // Answers p by the failure mode (Throw answers with the exception); true when that admitted it.
    private bool AnswerWithFallback(Pending p, Exception cause)
    {
        try
        {
            var fallback = Fallback(cause);
            return p.TrySetResult(fallback) && fallback.Allowed;
        }
        catch (Exception thrown)
        {
            p.TrySetException(thrown);
            return false;
        }
    }

    // The script's flag for a log key that holds another type than a sorted set.
    private const long WrongTypeFlag = -3;

    /// <summary>Reads the decision starting at <paramref name="at"/> (see <see cref="SlidingWindowScript"/>) and moves past it.</summary>
    private RateLimitDecision Parse(RedisResult[] r, ref int at)
    {
        var now = (long)r[0];
        var first = (long)r[at++];
        // Taken: only the remaining count comes back; the newest entry is this one, so reset is one window.
        if (first >= 0) return new RateLimitDecision(true, first, TimeSpan.Zero, Options.Window, now);
        var decision = new RateLimitDecision(
            first == -2,
            (long)r[at],
            TimeSpan.FromMicroseconds(Math.Max(0, (long)r[at + 1])),
            TimeSpan.FromMicroseconds(Math.Max(0, (long)r[at + 2])),
            now);
        at += 3;
        return decision;
    }

    // The breaker is open: the failure mode answers without a round trip (and without an exception unless it is Throw).
    private ValueTask<RateLimitDecision> ShortCircuited()
    {
        if (Options.OnRedisFailure != RedisFailureMode.Throw)
        {
            _breaker.CountShortCircuit(Component);
            return new ValueTask<RateLimitDecision>(Fallback(null));
        }
        var e = _breaker.ShortCircuit(Component, "no rate-limit decision was taken");
        RedisMetrics.RateLimitFallbackCounter.Add(1, new KeyValuePair<string, object?>("outcome", "thrown"));
        return ValueTask.FromException<RateLimitDecision>(e);
    }

    private const string Component = "ratelimit";

    private RateLimitDecision Fallback(Exception? e)
    {
        var mode = Options.OnRedisFailure;
        RedisMetrics.RateLimitFallbackCounter.Add(1, new KeyValuePair<string, object?>("outcome", mode switch
        {
            RedisFailureMode.FailOpen => "allowed",
            RedisFailureMode.FailClosed => "denied",
            _ => "thrown",
        }));
        if (mode == RedisFailureMode.Throw) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e!);
        var open = mode == RedisFailureMode.FailOpen;
        // Fail closed suggests retrying after a short pause rather than a whole window.
        return new RateLimitDecision(open, 0, open ? TimeSpan.Zero : TimeSpan.FromSeconds(1), TimeSpan.Zero, 0, IsFallback: true);
    }
}
