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

    /// <summary>Resolves the config folder for the <c>polystore</c> command, looking for a running <c>./run up</c> from the current folder upwards.</summary>
    /// <param name="explicitDirectory">The <c>--dir</c> option, if given.</param>
    /// <param name="workingDirectory">Where to start looking for a running <c>./run up</c>; the current folder when null.</param>
    public static ConfigLocation Locate(string? explicitDirectory, string? workingDirectory = null) =>
        Locate(explicitDirectory, workingDirectory, searchParents: true, Environment.GetEnvironmentVariable);

    /// <summary>
    /// The rules of <see cref="Locate(string?, string?)"/>; <paramref name="searchParents"/> false looks for a running
    /// <c>./run up</c> in the working folder only. A hosted app (<c>AddPolystore()</c>) never searches parents: the
    /// walk up is a convenience for developers at a terminal, and a service that picked up whatever config some parent
    /// folder holds could connect to the wrong servers.
    /// </summary>
    internal static ConfigLocation Locate(string? explicitDirectory, string? workingDirectory, bool searchParents, Func<string, string?> environment)
    {
        if (!string.IsNullOrWhiteSpace(explicitDirectory)) return new(Path.GetFullPath(explicitDirectory), "--dir");
        var fromEnvironment = environment("POLYSTORE_CONFIG_DIR");
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) return new(Path.GetFullPath(fromEnvironment), "POLYSTORE_CONFIG_DIR");
        var start = workingDirectory ?? System.IO.Directory.GetCurrentDirectory();
        if (FindRunningServers(start, searchParents) is { } running) return new(running, "servers started by ./run up");
        return new(Path.GetFullPath(Path.Combine(start, "config")), "./config");
    }

    /// <summary>
    /// The folder <c>AddPolystore()</c> loads when given none: the same rules, but a running <c>./run up</c> is looked
    /// for in the working folder only, never in its parents.
    /// </summary>
    internal static ConfigLocation LocateForHost(string? explicitDirectory, string? workingDirectory, Func<string, string?> environment) =>
        Locate(explicitDirectory, workingDirectory, searchParents: false, environment);

    /// <summary>The config folder of a <c>./run up</c> in this folder or a parent, if its servers are running.</summary>
    public static string? FindRunningServers(string start) => FindRunningServers(start, searchParents: true);

    private static string? FindRunningServers(string start, bool searchParents)
    {
        for (var dir = new DirectoryInfo(Path.GetFullPath(start)); dir is not null; dir = searchParents ? dir.Parent : null)
        {
            var state = Path.Combine(dir.FullName, StateFolder);
            var config = Path.Combine(state, "config");
            if (System.IO.Directory.Exists(config) && File.Exists(Path.Combine(state, "running"))) return config;
        }
        return null;
    }
}
