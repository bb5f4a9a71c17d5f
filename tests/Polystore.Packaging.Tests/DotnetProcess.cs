using System.Diagnostics;
using System.Text;

namespace Polystore.Packaging.Tests;

/// <summary>Runs a process (usually the dotnet CLI) to completion within a time limit, capturing its output.</summary>
public static class DotnetProcess
{
    public sealed record Result(string CommandLine, int ExitCode, string Stdout, string Stderr)
    {
        /// <summary>The command, its exit code and the end of its output, for assertion messages.</summary>
        public string Describe() => $"`{CommandLine}` exited {ExitCode}\n--- stdout (end) ---\n{Tail(Stdout)}\n--- stderr (end) ---\n{Tail(Stderr)}";

        private static string Tail(string text) => text.Length <= 6000 ? text : "..." + text[^6000..];
    }

    /// <summary>The dotnet executable running this test host, so children use the same SDK installation.</summary>
    public static string Dotnet { get; } =
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    /// <summary>
    /// Runs <paramref name="fileName"/> in <paramref name="workingDirectory"/>; kills the whole process tree and throws
    /// <see cref="TimeoutException"/> when it runs longer than <paramref name="timeout"/>.
    /// </summary>
    public static async Task<Result> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null, CancellationToken cancellationToken = default)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        // The test host may run under `dotnet test`, whose MSBuild settings must not steer the child builds.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            info.Environment.Remove(key);
        info.Environment["DOTNET_CLI_UI_LANGUAGE"] = "en";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        info.Environment["DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE"] = "1";
        info.Environment["NO_COLOR"] = "1";
        info.Environment["COLUMNS"] = "200";
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) info.Environment.Remove(key);
            else info.Environment[key] = value;
        }

        var commandLine = string.Join(' ', new[] { fileName }.Concat(info.ArgumentList));
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            // Bounded too: a grandchild that escaped the kill could hold the output pipes open.
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try { await process.WaitForExitAsync(grace.Token); } catch (OperationCanceledException) { }
            if (cancellationToken.IsCancellationRequested) throw;
            string output;
            lock (stdout) output = stdout.ToString();
            throw new TimeoutException($"`{commandLine}` did not finish within {timeout.TotalMinutes:0.#} min and was killed.\n{output[Math.Max(0, output.Length - 4000)..]}");
        }
        // WaitForExitAsync returns once the output streams are drained too.
        lock (stdout) lock (stderr) return new Result(commandLine, process.ExitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs the dotnet CLI; see <see cref="RunAsync"/>.</summary>
    public static Task<Result> DotnetAsync(string workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string?>? environment,
        CancellationToken cancellationToken, params string[] arguments) =>
        RunAsync(Dotnet, arguments, workingDirectory, timeout, environment, cancellationToken);
}
