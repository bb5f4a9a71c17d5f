using System.Diagnostics.Metrics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Polystore.Mongo;
using Polystore.OpenTelemetry;
using Polystore.Postgres;
using Polystore.Redis;

namespace Polystore.Integration.Tests;

/// <summary>
/// Every instrument of every Polystore meter has a UCUM unit (OpenTelemetry semantic conventions: <c>s</c>, <c>{call}</c>,
/// ...), and it is the unit docs/observability.md lists, so exporters and dashboards never see a unitless series.
/// </summary>
public sealed partial class InstrumentUnitTests
{
    [Fact]
    public void Every_Polystore_instrument_has_the_unit_the_observability_docs_list()
    {
        var instruments = PublishedInstruments();
        Assert.NotEmpty(instruments);
        Assert.All(PolystoreInstrumentation.MeterNames, meter => Assert.Contains(instruments, i => i.Meter.Name == meter));

        var unitless = instruments.Where(i => string.IsNullOrWhiteSpace(i.Unit)).Select(i => i.Name).Order().ToList();
        Assert.True(unitless.Count == 0, $"instruments without a unit: {string.Join(", ", unitless)}");

        var documented = DocumentedUnits();
        var mismatched = instruments
            .Where(i => !documented.TryGetValue(i.Name, out var unit) || unit != i.Unit)
            .Select(i => $"{i.Name}: unit '{i.Unit}', docs/observability.md '{documented.GetValueOrDefault(i.Name) ?? "(not listed)"}'")
            .Order().ToList();
        Assert.True(mismatched.Count == 0, string.Join("\n", mismatched));
    }

    // Instruments are static fields of each library's telemetry class; running every static constructor of the
    // libraries creates them all, so an instrument added in a new class is checked too.
    private static List<Instrument> PublishedInstruments()
    {
        Assembly[] libraries = [typeof(PostgresTelemetry).Assembly, typeof(RedisMetrics).Assembly, typeof(MongoStoreTelemetry).Assembly, typeof(IntegrationTelemetry).Assembly];
        foreach (var type in libraries.SelectMany(a => a.GetTypes()))
        {
            if (type.ContainsGenericParameters) continue;
            if (type.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic).Any(f => typeof(Instrument).IsAssignableFrom(f.FieldType)))
                RuntimeHelpers.RunClassConstructor(type.TypeHandle);
        }

        var found = new List<Instrument>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (PolystoreInstrumentation.MeterNames.Contains(instrument.Meter.Name)) lock (found) found.Add(instrument);
            },
        };
        listener.Start();   // publishes the instruments that already exist
        lock (found) return [.. found.DistinctBy(i => (i.Meter.Name, i.Name))];
    }

    // | `name` | Type | `unit` | ... rows of the Metrics table.
    private static Dictionary<string, string> DocumentedUnits()
    {
        var docs = File.ReadAllText(RepoFile("docs/observability.md"));
        return MetricRow().Matches(docs).ToDictionary(m => m.Groups["name"].Value, m => m.Groups["unit"].Value.Trim().Trim('`'));
    }

    [GeneratedRegex(@"^\| `(?<name>polystore\.[a-z_.]+)` \| [A-Za-z]+ \| (?<unit>[^|]*) \|", RegexOptions.Multiline)]
    private static partial Regex MetricRow();

    private static string RepoFile(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Polystore.slnx"))) return Path.Combine(dir.FullName, relative);
        throw new InvalidOperationException("repository root not found");
    }
}
