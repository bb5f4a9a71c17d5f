using System.CommandLine;
using System.Reflection;

namespace Polystore.Cli;

/// <summary>
/// Parses and runs a root command the way every Polystore executable does (the <c>polystore</c> tool and the repo's
/// <c>polystore-bench</c>): usage errors exit 2, failures print one line with secrets masked, Ctrl+C exits 130.
/// </summary>
internal static class CliHost
{
    /// <summary>This executable's name, as its messages start: polystore or polystore-bench.</summary>
    public static string Name { get; } = Assembly.GetEntryAssembly()?.GetName().Name ?? "polystore";

    /// <summary>Adds the common options to <paramref name="root"/>, then parses and invokes <paramref name="args"/>.</summary>
    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        CommonOptions.ConfigureConsole();
        root.Options.Add(CommonOptions.Dir);
        root.Options.Add(CommonOptions.Json);
        root.Options.Add(CommonOptions.Verbose);
        ParseResult parse;
        try
        {
            parse = root.Parse(args);
        }
        catch (Exception e)
        {
            // A validator's own bug must not print a stack trace either.
            return CliFailure.Report(e, args.Contains("--verbose"), [], args.Contains("--json"));
        }
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) Console.Error.WriteLine(error.Message);
            Console.Error.WriteLine($"Run '{Name} --help' for usage.");
            CommonOptions.WriteJsonError(args.Contains("--json"), ExitCodes.InvalidConfig, string.Join("; ", parse.Errors.Select(x => x.Message)));
            return ExitCodes.InvalidConfig;
        }
        try
        {
            // Exceptions come here, not to System.CommandLine's handler, which prints the stack trace first.
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"{Name}: cancelled");
            return 130;
        }
        catch (Exception e)
        {
            return CliFailure.Report(e, parse.GetValue(CommonOptions.Verbose), CommonOptions.LoadedSecrets, parse.GetValue(CommonOptions.Json));
        }
    }
}
