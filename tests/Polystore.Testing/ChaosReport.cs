using System.Text.Json;

namespace Polystore.Testing;

/// <summary>
/// One failover scenario's outcome, as <c>./run chaos</c> prints it: what was attempted while the fault
/// happened and what callers saw. Times are in milliseconds.
/// </summary>
/// <param name="Scenario">Short id, e.g. <c>redis-sentinel-kill-primary</c>.</param>
/// <param name="Fault">What was done to the servers, e.g. <c>SIGKILL of the Redis primary</c>.</param>
/// <param name="Attempted">Operations started while the scenario ran.</param>
/// <param name="Failed">Operations that ended in an error.</param>
/// <param name="FailedFast">Failed operations that failed within the fail-fast bound (no long hang).</param>
/// <param name="Lost">Acknowledged writes or decisions that are gone afterwards.</param>
/// <param name="Duplicated">Writes or deliveries seen more than once.</param>
/// <param name="UnavailableMs">First failed to last failed operation (0 when none failed).</param>
/// <param name="RecoverMs">From the fault to the first success on the new topology.</param>
/// <param name="Invariant">The invariant checked, and whether it held.</param>
public sealed record ChaosRow(
    string Scenario, string Fault, long Attempted, long Failed, long FailedFast, long Lost, long Duplicated,
    double UnavailableMs, double RecoverMs, string Invariant);

/// <summary>
/// Where failover tests put their <see cref="ChaosRow"/>s: appended as JSON lines to the file named by
/// <c>POLYSTORE_CHAOS_OUT</c> (set by <c>./run chaos</c>), nowhere otherwise. <see cref="Long"/> tells a
/// test to run its long version (more repetitions, longer traffic) rather than the suite's short one.
/// </summary>
public static class ChaosReport
{
    private static readonly Lock Gate = new();

    /// <summary>True under <c>./run chaos</c> (<c>POLYSTORE_CHAOS=long</c>): run the long version of a scenario.</summary>
    public static bool Long => string.Equals(Environment.GetEnvironmentVariable("POLYSTORE_CHAOS"), "long", StringComparison.Ordinal);

    /// <summary>Records one scenario's row (a no-op outside <c>./run chaos</c>).</summary>
    public static void Record(ChaosRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (Environment.GetEnvironmentVariable("POLYSTORE_CHAOS_OUT") is not { Length: > 0 } path) return;
        var line = JsonSerializer.Serialize(row) + "\n";
        lock (Gate) File.AppendAllText(path, line);
    }
}
