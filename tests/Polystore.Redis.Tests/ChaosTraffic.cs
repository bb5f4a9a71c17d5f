using System.Collections.Concurrent;
using System.Diagnostics;

namespace Polystore.Redis.Tests;

/// <summary>
/// Callers running in a loop while a fault happens: every call's start, end and outcome, as the callers saw it.
/// Times are milliseconds since the traffic started.
/// </summary>
internal sealed class ChaosTraffic
{
    /// <summary>A failed call that ended within this bound failed fast (no long hang).</summary>
    public static readonly TimeSpan FailFastBound = TimeSpan.FromSeconds(1);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentQueue<Call> _calls = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _workers = [];

    /// <summary>One call: when it started and ended (ms since the traffic started), and its error, if any.</summary>
    public sealed record Call(double Start, double End, string? Error);

    /// <summary>Now, in ms since the traffic started.</summary>
    public double Now => _clock.Elapsed.TotalMilliseconds;

    /// <summary>Starts <paramref name="workers"/> loops of <paramref name="call"/> (given the worker's number).</summary>
    public void Start(int workers, Func<int, CancellationToken, Task> call)
    {
        for (var w = 0; w < workers; w++)
        {
            var worker = w;
            _workers.Add(Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    var start = Now;
                    try
                    {
                        await call(worker, _stop.Token);
                        _calls.Enqueue(new Call(start, Now, null));
                    }
                    catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                    {
                        return;
                    }
                    catch (Exception e)
                    {
                        _calls.Enqueue(new Call(start, Now, $"{e.GetType().Name}: {e.Message.Split('\n', 2)[0].Trim()}"));
                        await Task.Delay(5); // no hot loop while the callers see errors
                    }
                }
            }));
        }
    }

    /// <summary>Stops the callers and waits for their last calls.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Poll.WithinAsync(Task.WhenAll(_workers), "the last calls of the traffic", TimeSpan.FromSeconds(30));
    }

    public IReadOnlyList<Call> Calls => [.. _calls];

    public long Attempted => _calls.Count;

    public IReadOnlyList<Call> Failures => [.. _calls.Where(c => c.Error is not null)];

    public long FailedFast => Failures.Count(c => c.End - c.Start <= FailFastBound.TotalMilliseconds);

    /// <summary>From the start of the first failed call to the end of the last one (0 when none failed).</summary>
    public double UnavailableMs
    {
        get
        {
            var failures = Failures;
            return failures.Count == 0 ? 0 : failures.Max(c => c.End) - failures.Min(c => c.Start);
        }
    }

    /// <summary>From <paramref name="faultAt"/> to the end of the first call started after it that succeeded (-1: none did).</summary>
    public double RecoverMs(double faultAt)
    {
        var ends = _calls.Where(c => c.Error is null && c.Start >= faultAt).Select(c => c.End).ToList();
        return ends.Count == 0 ? -1 : ends.Min() - faultAt;
    }

    /// <summary>The distinct errors the callers saw, with counts (for assertion messages).</summary>
    public string ErrorSummary() => string.Join("; ", Failures.GroupBy(c => c.Error).Select(g => $"{g.Count()}x {g.Key}"));
}
