using BenchmarkDotNet.Running;

// Micro benchmarks of Polystore alone, against the private servers of ./run up:
//   ./run up && dotnet run -c Release --project benchmarks/Polystore.Benchmarks -- --filter '*'
// Side-by-side runs against peers and known techniques are `./run bench postgres|redis|integration` (benchmarks/Polystore.Bench).
BenchmarkSwitcher.FromAssembly(typeof(Polystore.Benchmarks.UpsertBenchmarks).Assembly).Run(args);
