using System.Runtime.CompilerServices;

namespace Polystore.Integration.Outbox;

/// <summary>The backlog figures each dispatcher last measured, kept only as long as the dispatcher lives.</summary>
internal sealed record OutboxFigures(string Schema, string Subscriber, long Backlog, double LagSeconds, long MeasuredAt)
{
    private static readonly ConditionalWeakTable<object, OutboxFigures> Measured = new();

    public KeyValuePair<string, object?>[] Tags { get; } = [new("schema", Schema), new("subscriber", Subscriber)];

    public static void Set(object dispatcher, OutboxFigures figures) => Measured.AddOrUpdate(dispatcher, figures);

    public static void Clear(object dispatcher) => Measured.Remove(dispatcher);

    /// <summary>The newest figures per subscriber (several dispatchers of one subscriber may run in a process).</summary>
    public static IEnumerable<OutboxFigures> Latest() =>
        Measured.Select(m => m.Value).GroupBy(f => (f.Schema, f.Subscriber)).Select(g => g.MaxBy(f => f.MeasuredAt)!).ToList();
}
