using System.CommandLine;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore bench</c>: the parent of every store's benchmark (<c>bench postgres</c>, ...).</summary>
internal static class BenchCommand
{
    public static Command Create(params Command[] subcommands)
    {
        var bench = new Command("bench", "Benchmarks: Polystore side by side with the known techniques and peers, on the same servers, in one run.");
        foreach (var c in subcommands) bench.Subcommands.Add(c);
        return bench;
    }
}
