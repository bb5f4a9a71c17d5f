namespace Polystore.Core.Configuration;

/// <summary>How a command found its config folder.</summary>
/// <param name="Directory">The folder.</param>
/// <param name="Reason">Which rule chose it, for messages (<c>--dir</c>, <c>POLYSTORE_CONFIG_DIR</c>, ...).</param>
public sealed record ConfigLocation(string Directory, string Reason);

/// <summary>
/// Finds the config folder the same way for every command: <c>--dir</c>, else
/// <c>POLYSTORE_CONFIG_DIR</c>, else the folder <c>./run up</c> wrote while its servers run,
/// else <c>./config</c>.
/// </summary>
public static class ConfigLocator
{
    /// <summary>The folder (relative to a checkout) where <c>./run up</c> keeps its state.</summary>
    public const string StateFolder = ".polystore";

    /// <summary>Resolves the config folder.</summary>
    /// <param name="explicitDirectory">The <c>--dir</c> option, if given.</param>
    /// <param name="workingDirectory">Where to start looking for a running <c>./run up</c>; the current folder when null.</param>
    public static ConfigLocation Locate(string? explicitDirectory, string? workingDirectory = null)
    {
        if (!string.IsNullOrWhiteSpace(explicitDirectory)) return new(Path.GetFullPath(explicitDirectory), "--dir");
        var fromEnvironment = Environment.GetEnvironmentVariable("POLYSTORE_CONFIG_DIR");
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) return new(Path.GetFullPath(fromEnvironment), "POLYSTORE_CONFIG_DIR");
        var start = workingDirectory ?? System.IO.Directory.GetCurrentDirectory();
        if (FindRunningServers(start) is { } running) return new(running, "servers started by ./run up");
        return new(Path.GetFullPath(Path.Combine(start, "config")), "./config");
    }

    /// <summary>The config folder of a <c>./run up</c> in this folder or a parent, if its servers are running.</summary>
    public static string? FindRunningServers(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var state = Path.Combine(dir.FullName, StateFolder);
            var config = Path.Combine(state, "config");
            if (System.IO.Directory.Exists(config) && File.Exists(Path.Combine(state, "running"))) return config;
        }
        return null;
    }
}
