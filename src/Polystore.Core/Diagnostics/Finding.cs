namespace Polystore.Core.Diagnostics;

/// <summary>How urgent a diagnostic finding is.</summary>
public enum Severity
{
    /// <summary>Healthy or informational.</summary>
    Info,
    /// <summary>Worth a look; not yet harmful.</summary>
    Warning,
    /// <summary>Harmful now or soon; <c>polystore doctor</c> exits non-zero.</summary>
    Critical,
}

/// <summary>
/// One result of a diagnostic check: what was found, the numbers that show it, and the exact
/// command or SQL that fixes it. Shared by every store so the doctor prints them alike.
/// </summary>
/// <param name="Store">postgres, mongo or redis (<see cref="Configuration.StoreNames"/>).</param>
/// <param name="Check">A stable identifier, for example <c>postgres.unused_indexes</c>.</param>
/// <param name="Severity">How urgent it is.</param>
/// <param name="Title">One line a person reads first.</param>
/// <param name="Evidence">The numbers behind it, by name.</param>
/// <param name="Remedy">What to run or change, as concretely as possible.</param>
public sealed record Finding(
    string Store,
    string Check,
    Severity Severity,
    string Title,
    IReadOnlyDictionary<string, string> Evidence,
    string? Remedy = null);
