using System.Collections.Concurrent;
using System.Diagnostics;

namespace Polystore.Testing;

/// <summary>
/// Records every activity of the named sources that stops while it lives, sampled with all data. Listeners are
/// process-global and test classes run in parallel: find your spans by a tag only your test uses (its schema, table, key).
/// </summary>
public sealed class ActivityCapture : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<Activity> _stopped = new();

    /// <summary>Starts listening to <paramref name="sources"/>.</summary>
    public ActivityCapture(params string[] sources)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => sources.Contains(source.Name),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>The stopped activities with tag <paramref name="tag"/> equal to <paramref name="value"/>, in stop order.</summary>
    public IReadOnlyList<Activity> WithTag(string tag, object value) =>
        [.. _stopped.Where(a => Equals(a.GetTagItem(tag), value))];

    /// <summary>Every stopped activity, in stop order.</summary>
    public IReadOnlyList<Activity> All => [.. _stopped];

    /// <inheritdoc />
    public void Dispose() => _listener.Dispose();
}
