using System.Diagnostics;

namespace Polystore.Bench;

/// <summary>
/// Starts this same executable (polystore-bench) as a child (for kill tests). Its output is discarded;
/// set POLYSTORE_DEBUG_CHILDREN=1 to see its stderr, prefixed with its command.
/// </summary>
internal static class ChildProcess
{
    public static Process StartSelf(params string[] args)
    {
        var info = new ProcessStartInfo { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        var self = Environment.ProcessPath!;
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            info.FileName = self;
            info.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        }
        else info.FileName = self;
        foreach (var arg in args) info.ArgumentList.Add(arg);
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        var echo = Environment.GetEnvironmentVariable("POLYSTORE_DEBUG_CHILDREN") == "1";
        process.ErrorDataReceived += (_, e) => { if (echo && e.Data is not null) Console.Error.WriteLine($"[child {args[0]}] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>SIGKILL: no cleanup, no graceful shutdown, exactly what a crash or an OOM kill does.</summary>
    public static void KillHard(Process process)
    {
        try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        process.WaitForExit();
        process.Dispose();
    }
}
