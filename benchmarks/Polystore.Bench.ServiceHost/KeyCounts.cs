namespace Polystore.Bench.ServiceHost;

/// <summary>One key's responses.</summary>
internal sealed record KeyCounts(long Admitted, long Rejected, long Other);
