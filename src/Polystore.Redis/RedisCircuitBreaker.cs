using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polystore.Core;
using StackExchange.Redis;

namespace Polystore.Redis;

/// <summary>
/// The circuit breaker of one connection, shared by the components that use it with equal
/// <see cref="RedisCircuitBreakerOptions"/> (see there for the rules). Closed: calls go to Redis, each bounded by the
/// operation timeout, and their outcomes are counted. Open: callers ask <see cref="IsOpen"/> first and skip Redis.
/// Half-open: one background PING is on its way; calls still skip Redis until it answers.
/// </summary>
internal sealed class RedisCircuitBreaker
{
    public const int Closed = 0;
    public const int HalfOpen = 1;
    public const int Open = 2;

    // Weak: a breaker lives as long as its connection (the probe timer only holds it while open).
    private static readonly ConditionalWeakTable<IConnectionMultiplexer, List<RedisCircuitBreaker>> Attached = new();

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisCircuitBreakerOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private ILogger _logger = NullLogger.Instance;
    private int _state;
    private int _failures;       // in a row while closed (under _gate; read without it to skip the lock)
    private long _firstFailure;  // timestamp of the first of them
    private long _openedAt;
    private string _reason = "";
    private long _shortCircuited; // calls that skipped Redis in this outage
    private int _probes;          // probes of this outage
    private int _probing;
    private ITimer? _timer;

    private RedisCircuitBreaker(IConnectionMultiplexer redis, RedisCircuitBreakerOptions options)
    {
        _redis = redis;
        _options = options;
        _time = options.TimeProvider;
        Connection = string.Join(",", redis.GetEndPoints().Select(RedisPing.Format));
        _ = RedisMetrics.ShortCircuitedCounter; // publishes the meter's instruments, the state gauge included
        redis.ConnectionFailed += OnConnectionFailed;
        redis.ConnectionRestored += OnConnectionRestored;
    }

    /// <summary>The configured endpoints, for logs, metrics and messages (never credentials).</summary>
    public string Connection { get; }

    /// <summary><see cref="Closed"/>, <see cref="HalfOpen"/> or <see cref="Open"/>.</summary>
    public int State => Volatile.Read(ref _state);

    /// <summary>True while calls must skip Redis (open or half-open).</summary>
    public bool IsOpen => Volatile.Read(ref _state) != Closed;

    /// <summary>
    /// The breaker of <paramref name="redis"/> for <paramref name="options"/>, created on first use. A connection that is
    /// not connected at all when a component attaches opens it at once: calls would only wait for the timeout.
    /// </summary>
    public static RedisCircuitBreaker For(IConnectionMultiplexer redis, RedisCircuitBreakerOptions options, ILoggerFactory? loggerFactory)
    {
        var all = Attached.GetValue(redis, static _ => []);
        RedisCircuitBreaker? breaker;
        lock (all)
        {
            breaker = all.Find(b => b._options == options);
            if (breaker is null) all.Add(breaker = new RedisCircuitBreaker(redis, options));
        }
        if (loggerFactory is not null and not NullLoggerFactory)
            Interlocked.CompareExchange(ref breaker._logger, loggerFactory.CreateLogger<RedisCircuitBreaker>(), NullLogger.Instance);
        if (!redis.IsConnected) breaker.Trip("no Redis server is connected");
        return breaker;
    }

    /// <summary>The breakers attached to <paramref name="redis"/> (none when no component uses it).</summary>
    public static IReadOnlyList<RedisCircuitBreaker> Of(IConnectionMultiplexer redis)
    {
        if (!Attached.TryGetValue(redis, out var all)) return [];
        lock (all) return [.. all];
    }

    /// <summary>One state measurement per breaker (0 closed, 1 half-open, 2 open), tagged with its connection.</summary>
    internal static IEnumerable<Measurement<int>> Measure()
    {
        var measurements = new List<Measurement<int>>();
        foreach (var (_, all) in Attached)
        {
            lock (all)
            {
                foreach (var b in all)
                    measurements.Add(new Measurement<int>(b.State, new KeyValuePair<string, object?>("connection", b.Connection)));
            }
        }
        return measurements;
    }

    /// <summary>Counts a call that skipped Redis because the breaker is open.</summary>
    public void CountShortCircuit(string component)
    {
        Interlocked.Increment(ref _shortCircuited);
        RedisMetrics.ShortCircuitedCounter.Add(1, new KeyValuePair<string, object?>("component", component), new KeyValuePair<string, object?>("connection", Connection));
    }

    /// <summary>Counts a call that skipped Redis and returns the exception that says so (never sent, so it ran nowhere).</summary>
    public RedisConnectionException ShortCircuit(string component, string? consequence = null)
    {
        CountShortCircuit(component);
        var message = consequence is null ? Describe() : $"{Describe()}: {consequence}";
        return new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, message, null, CommandStatus.WaitingToBeSent);
    }

    /// <summary>What the breaker's state is and why, for exceptions and health data.</summary>
    public string Describe()
    {
        lock (_gate)
        {
            if (_state == Closed) return $"Redis circuit breaker for {Connection} is closed";
            var open = _time.GetElapsedTime(_openedAt).TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
            var state = _state == HalfOpen ? "half-open (a PING is probing Redis)" : "open";
            return $"Redis circuit breaker for {Connection} is {state} for {open} s ({_reason}); calls skip Redis until a PING succeeds";
        }
    }

    /// <summary>Runs <paramref name="call"/> within the operation timeout and counts its outcome.</summary>
    public Task<T> RunAsync<T>(Task<T> call, CancellationToken cancellationToken = default)
    {
        if (call.IsCompletedSuccessfully)
        {
            Succeeded();
            return call;
        }
        return WatchAsync(call, cancellationToken);
    }

    /// <inheritdoc cref="RunAsync{T}(Task{T}, CancellationToken)"/>
    public Task RunAsync(Task call, CancellationToken cancellationToken = default)
    {
        if (call.IsCompletedSuccessfully)
        {
            Succeeded();
            return call;
        }
        return WatchAsync(call, cancellationToken);
    }

    /// <summary>A call reached Redis: the failures in a row start again.</summary>
    public void Succeeded()
    {
        if (Volatile.Read(ref _failures) == 0) return;
        lock (_gate)
        {
            if (_state == Closed) _failures = 0;
        }
    }

    /// <summary>Counts a failure (only "Redis unavailable" kinds are passed here); the threshold within the window opens the breaker.</summary>
    public void Failed(Exception error)
    {
        if (!_options.Enabled || Volatile.Read(ref _state) != Closed) return;
        string? opened = null;
        lock (_gate)
        {
            if (_state != Closed) return;
            var now = _time.GetTimestamp();
            if (_failures == 0 || _time.GetElapsedTime(_firstFailure, now) > _options.FailureWindow)
            {
                _failures = 0;
                _firstFailure = now;
            }
            if (++_failures < _options.FailureThreshold) return;
            opened = $"{_failures} failures in a row, the last: {Reason(error)}";
            OpenLocked(opened, now);
        }
        _logger.CircuitOpened(Connection, opened, _options.BreakDuration);
    }

    /// <summary>Opens the breaker (from closed only) for <paramref name="reason"/>.</summary>
    private void Trip(string reason)
    {
        if (!_options.Enabled || Volatile.Read(ref _state) != Closed) return;
        lock (_gate)
        {
            if (_state != Closed) return;
            OpenLocked(reason, _time.GetTimestamp());
        }
        _logger.CircuitOpened(Connection, reason, _options.BreakDuration);
    }

    private void OpenLocked(string reason, long now)
    {
        _state = Open;
        _failures = 0;
        _openedAt = now;
        _reason = reason;
        _probes = 0;
        Interlocked.Exchange(ref _shortCircuited, 0);
        ProbeIn(_options.BreakDuration);
    }

    private void ProbeIn(TimeSpan due)
    {
        _timer ??= _time.CreateTimer(static s => _ = ((RedisCircuitBreaker)s!).ProbeAsync(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _timer.Change(due, Timeout.InfiniteTimeSpan);
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e)
    {
        // Every server gone: a call would only wait in the backlog until it times out.
        if (e.ConnectionType == ConnectionType.Interactive && e.FailureType != ConnectionFailureType.ConnectionDisposed && !_redis.IsConnected)
            Trip($"the connection to {(e.EndPoint is null ? Connection : RedisPing.Format(e.EndPoint))} was lost ({e.FailureType}) and no server is connected");
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        // Probe now rather than at the end of the break: recovery then takes one PING, not a break duration.
        if (e.ConnectionType != ConnectionType.Interactive || State != Open) return;
        lock (_gate)
        {
            if (_state == Open) ProbeIn(TimeSpan.Zero);
        }
    }

    /// <summary>The half-open trial: one PING, bounded by the operation timeout (or the break duration when that is infinite).</summary>
    private async Task ProbeAsync()
    {
        if (Interlocked.Exchange(ref _probing, 1) == 1) return;
        int probe;
        lock (_gate)
        {
            if (_state != Open)
            {
                Volatile.Write(ref _probing, 0);
                return;
            }
            _state = HalfOpen;
            probe = ++_probes;
        }
        // The first probe of an outage is worth reading; the next ones only repeat it.
        var level = probe == 1 ? LogLevel.Information : LogLevel.Debug;
        _logger.CircuitHalfOpen(level, Connection, probe);
        string? failure = null;
        var disposed = false;
        try
        {
            var bound = _options.OperationTimeout == Timeout.InfiniteTimeSpan ? _options.BreakDuration : _options.OperationTimeout;
            await _redis.GetDatabase().PingAsync().WaitAsync(bound, _time).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            disposed = true; // the connection is gone: nothing left to probe
        }
        catch (Exception e)
        {
            failure = e is TimeoutException && e is not RedisTimeoutException ? "no answer within the operation timeout" : Reason(e);
        }
        TimeSpan outage = default;
        long skipped = 0;
        lock (_gate)
        {
            if (failure is null && !disposed)
            {
                _state = Closed;
                _failures = 0;
                outage = _time.GetElapsedTime(_openedAt);
                skipped = Interlocked.Read(ref _shortCircuited);
            }
            else
            {
                _state = Open;
                if (!disposed) ProbeIn(_options.BreakDuration);
            }
            Volatile.Write(ref _probing, 0);
        }
        if (disposed) return;
        if (failure is null) _logger.CircuitClosed(Connection, outage, skipped);
        else _logger.CircuitReopened(level, Connection, failure, _options.BreakDuration);
    }

    private async Task<T> WatchAsync<T>(Task<T> call, CancellationToken cancellationToken)
    {
        try
        {
            var result = await call.WaitAsync(_options.OperationTimeout, _time, cancellationToken).ConfigureAwait(false);
            Succeeded();
            return result;
        }
        catch (TimeoutException e) when (e is not RedisTimeoutException)
        {
            if (!call.IsCompleted) throw GaveUp(call);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e))
        {
            if (!RedisErrors.IsMigrating(e)) Failed(e); // a slot on the move is no outage: the cluster answers
            throw;
        }
        // The call completed as the operation timeout fired (its own timeout often fires at the same moment): its outcome stands.
        return await WatchAsync(call, cancellationToken).ConfigureAwait(false);
    }

    private async Task WatchAsync(Task call, CancellationToken cancellationToken)
    {
        try
        {
            await call.WaitAsync(_options.OperationTimeout, _time, cancellationToken).ConfigureAwait(false);
            Succeeded();
            return;
        }
        catch (TimeoutException e) when (e is not RedisTimeoutException)
        {
            if (!call.IsCompleted) throw GaveUp(call);
        }
        catch (Exception e) when (RedisErrors.IsUnavailable(e))
        {
            if (!RedisErrors.IsMigrating(e)) Failed(e); // a slot on the move is no outage: the cluster answers
            throw;
        }
        // The call completed as the operation timeout fired: its outcome stands.
        await WatchAsync(call, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The operation timeout fired with the call still pending: it may yet run, so its status is unknown.</summary>
    private RedisTimeoutException GaveUp(Task call)
    {
        _ = call.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        var e = new RedisTimeoutException(
            CommandFlags.None,
            $"Redis at {Connection} did not answer within the operation timeout ({_options.OperationTimeout.TotalMilliseconds:0} ms); the call may still run",
            CommandStatus.Unknown);
        Failed(e);
        return e;
    }

    // The reason reaches logs, health data and the exceptions of short-circuited calls: redacted, then one line.
    private static string Reason(Exception error) => Redactor.Redact(error.Message, []).Split('\n', 2)[0].Trim();
}
