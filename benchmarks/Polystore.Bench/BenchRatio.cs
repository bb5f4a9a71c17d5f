using System.Text.Json.Serialization;

namespace Polystore.Bench;

/// <summary>
/// One entry of a bench's <c>ratios</c> object in <c>--json</c>: <c>{value, target, met, rounds}</c>. <c>value</c> is
/// the ratio of the two sides' reported figures (their medians); <c>target</c> and <c>met</c> appear when the ratio has
/// a goal (<c>at_most</c> too when lower is better); <c>rounds</c> holds the ratio of each interleaved round (round i of
/// one side over round i of the other) when both sides were sampled per round.
/// </summary>
internal sealed record BenchRatio
{
    public required double Value { get; init; }

    public double? Target { get; init; }

    /// <summary>The target is a ceiling (lower is better) rather than a floor.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool AtMost { get; init; }

    public bool? Met { get; init; }

    public IReadOnlyList<double>? Rounds { get; init; }

    /// <summary>The ratio of <paramref name="numerator"/> over <paramref name="denominator"/>, with per-round ratios when both have the same rounds.</summary>
    public static BenchRatio Of(double numerator, double denominator, IReadOnlyList<double>? numeratorRounds = null, IReadOnlyList<double>? denominatorRounds = null) => new()
    {
        Value = numerator / denominator,
        Rounds = numeratorRounds is { Count: > 0 } && denominatorRounds?.Count == numeratorRounds.Count
            ? [.. numeratorRounds.Select((n, i) => n / denominatorRounds[i])]
            : null,
    };

    /// <summary>The same ratio with a goal: at least <paramref name="target"/>, or at most with <paramref name="atMost"/>.</summary>
    public BenchRatio WithTarget(double target, bool atMost = false) =>
        this with { Target = target, AtMost = atMost, Met = atMost ? Value <= target : Value >= target };

    /// <summary>The round-by-round maximum of several sides (the faster peer of each round).</summary>
    public static IReadOnlyList<double>? MaxPerRound(params IReadOnlyList<double>?[] sides) =>
        sides.All(s => s is { Count: > 0 } && s.Count == sides[0]!.Count)
            ? [.. Enumerable.Range(0, sides[0]!.Count).Select(i => sides.Max(s => s![i]))]
            : null;

    /// <summary>The same entry with <c>value</c> and <c>rounds</c> rounded for printing; <c>met</c> stays judged on the unrounded value.</summary>
    public BenchRatio Rounded(int digits) => this with
    {
        Value = Math.Round(Value, digits),
        Rounds = Rounds is null ? null : [.. Rounds.Select(r => Math.Round(r, digits))],
    };
}
