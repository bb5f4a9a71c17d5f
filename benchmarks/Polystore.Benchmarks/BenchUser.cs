namespace Polystore.Benchmarks;

/// <summary>A row of the upsert benchmarks.</summary>
public sealed record BenchUser(string Email, string Name, int Score, string Region);
