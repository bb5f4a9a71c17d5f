using System.Diagnostics;

namespace Polystore.Cli.Tests;

/// <summary>
/// Runs the real polystore executable, as a user would (or, through <see cref="RunExecutableAsync"/>, another one
/// built beside the tests, such as polystore-bench).
/// </summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Task<Result> RunAsync(IReadOnlyDictionary<string, string?>? environment, params string[] args) =>
        RunAsync(environment, TestContext.Current.CancellationToken, args);

    /// <summary>Runs polystore; when <paramref name="cancellationToken"/> fires, kills it and throws.</summary>
    public static Task<Result> RunAsync(IReadOnlyDictionary<string, string?>? environment, CancellationToken cancellationToken, params string[] args) =>
        RunExecutableAsync("polystore", environment, cancellationToken, args);

    /// <summary>Runs polystore from <paramref name="workingDirectory"/>.</summary>
    public static Task<Result> RunInAsync(string workingDirectory, IReadOnlyDictionary<string, string?>? environment, params string[] args) =>
        RunExecutableAsync("polystore", environment, TestContext.Current.CancellationToken, args, workingDirectory);

    /// <summary>Runs <paramref name="assembly"/>.dll from the test output folder; when <paramref name="cancellationToken"/> fires, kills it and throws.</summary>
    public static async Task<Result> RunExecutableAsync(string assembly, IReadOnlyDictionary<string, string?>? environment, CancellationToken cancellationToken, string[] args, string? workingDirectory = null)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, assembly + ".dll");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        info.ArgumentList.Add(dll);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.Environment["COLUMNS"] = "200";
        info.Environment["NO_COLOR"] = "1";
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) info.Environment.Remove(key);
            else info.Environment[key] = value;
        }
        using var process = Process.Start(info)!;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, TestContext.Current.CancellationToken);
        var stdout = process.StandardOutput.ReadToEndAsync(linked.Token);
        var stderr = process.StandardError.ReadToEndAsync(linked.Token);
        try
        {
            await process.WaitForExitAsync(linked.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return new Result(process.ExitCode, await stdout, await stderr);
    }
}
