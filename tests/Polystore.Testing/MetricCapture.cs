using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Polystore.Testing;

/// <summary>One measurement an instrument reported.</summary>
/// <param name="Instrument">The instrument's name.</param>
/// <param name="Unit">The instrument's unit.</param>
/// <param name="Value">The value, as a double.</param>
/// <param name="Tags">The measurement's tags.</param>
public sealed record CapturedMeasurement(string Instrument, string? Unit, double Value, IReadOnlyDictionary<string, object?> Tags);

/// <summary>
/// Records the measurements of every instrument of the named meters while it lives. Listeners are process-global:
/// filter by a tag only your test uses (a table, collection, schema or subscriber name).
/// </summary>
public sealed class MetricCapture : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<CapturedMeasurement> _measurements = new();

    /// <summary>Starts listening to <paramref name="meters"/>.</summary>
    public MetricCapture(params string[] meters)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (meters.Contains(instrument.Meter.Name)) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        _listener.Start();
    }

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var copy = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var tag in tags) copy[tag.Key] = tag.Value;
        _measurements.Enqueue(new CapturedMeasurement(instrument.Name, instrument.Unit, value, copy));
    }

    /// <summary>Asks every observable instrument (gauges) for its values now.</summary>
    public void RecordObservables() => _listener.RecordObservableInstruments();

    /// <summary>The measurements of <paramref name="instrument"/> whose tag <paramref name="tag"/> is <paramref name="value"/>, in order.</summary>
    public IReadOnlyList<CapturedMeasurement> Of(string instrument, string tag, object value) =>
        [.. _measurements.Where(m => m.Instrument == instrument && m.Tags.TryGetValue(tag, out var v) && Equals(v, value))];

    /// <summary>Forgets what was recorded so far.</summary>
    public void Clear() => _measurements.Clear();

    /// <inheritdoc />
    public void Dispose() => _listener.Dispose();
}
