using System.CommandLine;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore bench AREA</c>: the parent of each area's side-by-side benchmark.</summary>
internal static class BenchCommand
{
    public static Command Create(params Command[] subcommands)
    {
        var bench = new Command("bench", "Run Polystore and its peers side by side on the same private servers; --json adds a 'ratios' object.");
        foreach (var sub in subcommands) bench.Subcommands.Add(sub);
        return bench;
    }
}
