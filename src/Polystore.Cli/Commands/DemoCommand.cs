using System.CommandLine;

namespace Polystore.Cli.Commands;

/// <summary><c>polystore demo AREA</c>: short walkthroughs on the configured servers, used by <c>./run demo</c>.</summary>
internal static class DemoCommand
{
    public static Command Create(params Command[] subcommands)
    {
        var demo = new Command("demo", "Short walkthroughs of each area on the configured servers.");
        foreach (var sub in subcommands) demo.Subcommands.Add(sub);
        return demo;
    }
}
