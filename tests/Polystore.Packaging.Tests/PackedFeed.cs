using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Polystore.Packaging.Tests;

/// <summary>
/// One `dotnet pack` of every shipped project per test run, into a folder feed under the system temp folder
/// (outside the repository, so none of its Directory.Build.props / Directory.Packages.props reach the consumers),
/// and what consumers of that feed need: their nuget.config, a per-run packages folder, the config of the private servers.
/// </summary>
/// <remarks>
/// Packages keep the real version. Consumers restore into a per-run NUGET_PACKAGES folder (with the machine's
/// global packages folder as a read-only fallback for third-party packages), so the packages of this run never
/// enter the machine's cache, where a later run or a later build of the same version would find stale ones.
/// </remarks>
public sealed partial class PackedFeed : IAsyncLifetime
{
    // Limits that stop a hung process, not speed checks: they leave room for a machine busy with other test runs
    // (packing takes about 1.5 min of CPU; 7 min of wall time was seen with the other test projects running).

    /// <summary>Limit for the one pack of every shipped project.</summary>
    public static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(15);

    /// <summary>Limit for one restore and build of a consumer app, and for one tool install.</summary>
    public static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(8);

    /// <summary>Limit for one run of a consumer app or of the installed tool.</summary>
    public static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);

    /// <summary>The checkout these tests were built from.</summary>
    public string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>This run's folder under the system temp folder.</summary>
    public string Root { get; } = Path.Combine(Path.GetTempPath(), $"polystore-packaging-{Guid.NewGuid():N}"[..33]);

    /// <summary>The local folder feed that every shipped package is packed into.</summary>
    public string FeedDirectory => Path.Combine(Root, "feed");

    /// <summary>The NUGET_PACKAGES folder of this run's consumers.</summary>
    public string PackagesDirectory => Path.Combine(Root, "packages");

    /// <summary>The version every shipped package must carry: VersionPrefix of Directory.Build.props.</summary>
    public string Version { get; private set; } = "";

    /// <summary>The shipped projects (under src/ in Polystore.slnx).</summary>
    public IReadOnlyList<ShippedProject> Projects { get; private set; } = [];

    /// <summary>Package id to .nupkg path, for every package the pack produced.</summary>
    public IReadOnlyDictionary<string, string> Packages { get; private set; } = new Dictionary<string, string>();

    /// <summary>The machine's enabled package sources (name, URL), as `dotnet nuget list source` reports them outside the repository.</summary>
    public IReadOnlyList<(string Name, string Url)> MachineSources { get; private set; } = [];

    /// <summary>The machine's global packages folder, used by consumers as a read-only fallback.</summary>
    public string MachinePackagesFolder { get; private set; } = "";

    /// <summary>The folder of YAML files written by ./run up for the private servers.</summary>
    public string ConfigDirectory =>
        Environment.GetEnvironmentVariable("POLYSTORE_CONFIG_DIR") is { Length: > 0 } dir ? dir
        : Directory.Exists(Path.Combine(RepositoryRoot, ".polystore", "config")) ? Path.Combine(RepositoryRoot, ".polystore", "config")
        : throw new InvalidOperationException("no private servers: run './run up' and export POLYSTORE_CONFIG_DIR=$PWD/.polystore/config");

    public async ValueTask InitializeAsync()
    {
        var outside = Path.GetRelativePath(RepositoryRoot, Root);
        if (!outside.StartsWith("..", StringComparison.Ordinal) && !Path.IsPathRooted(outside))
            throw new InvalidOperationException($"the temp folder {Root} is inside the repository {RepositoryRoot}; point TMPDIR elsewhere");
        Directory.CreateDirectory(Root);
        Version = ReadVersion();
        Projects = ReadShippedProjects();
        MachineSources = await ListMachineSourcesAsync();
        MachinePackagesFolder = await MachinePackagesFolderAsync();

        // One pack of a generated solution: the shipped projects, and the samples the tool bundles (so they build
        // in Release too; they are not packable). Build output goes to an artifacts folder of this run, so packing
        // never touches the checkout's bin/obj, which other test projects may be using at the same time.
        var solution = Path.Combine(Root, "pack.slnx");
        new XDocument(new XElement("Solution", ReadSolutionProjects()
            .Where(p => p.StartsWith("src/", StringComparison.Ordinal) || p.StartsWith("samples/", StringComparison.Ordinal))
            .Select(p => new XElement("Project", new XAttribute("Path", Path.GetRelativePath(Root, Path.Combine(RepositoryRoot, p)))))))
            .Save(solution);
        var pack = await DotnetProcess.DotnetAsync(Root, PackTimeout, null, TestContext.Current.CancellationToken,
            "pack", solution, "-c", "Release", "--artifacts-path", Path.Combine(Root, "artifacts"), "-o", FeedDirectory,
            "--disable-build-servers", "-nologo");
        if (pack.ExitCode != 0) throw new InvalidOperationException("packing the shipped projects failed: " + pack.Describe());
        Packages = Directory.GetFiles(FeedDirectory, "*.nupkg").ToDictionary(PackageId, StringComparer.OrdinalIgnoreCase);
    }

    public ValueTask DisposeAsync()
    {
        if (Environment.GetEnvironmentVariable("POLYSTORE_KEEP_PACKAGING_TEMP") is not { Length: > 0 })
        {
            try { Directory.Delete(Root, recursive: true); }
            catch (IOException) { /* a process of ours still holds a file: the folder is in the temp folder anyway */ }
            catch (UnauthorizedAccessException) { }
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Copies the consumer app <paramref name="template"/> (a folder under ConsumerApp/) to a fresh folder of this
    /// run, with a nuget.config that takes Polystore.* from the local feed only and everything else from the machine's
    /// sources, and empty Directory.Build/Packages files that stop MSBuild from looking further up.
    /// </summary>
    public string CreateApp(string template, string name)
    {
        var source = Path.Combine(AppContext.BaseDirectory, "ConsumerApp", template);
        var app = Path.Combine(Root, name);
        Directory.CreateDirectory(app);
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(app, Path.GetFileName(file)));
        new XDocument(new XElement("Project", new XElement("PropertyGroup", new XElement("PolystoreVersion", Version)))).Save(Path.Combine(app, "Directory.Build.props"));
        new XDocument(new XElement("Project")).Save(Path.Combine(app, "Directory.Build.targets"));
        new XDocument(new XElement("Project")).Save(Path.Combine(app, "Directory.Packages.props"));
        WriteNuGetConfig(Path.Combine(app, "nuget.config"));
        return app;
    }

    /// <summary>Restores and builds a consumer app (Release) with this run's packages folder.</summary>
    public Task<DotnetProcess.Result> BuildAppAsync(string app) =>
        DotnetProcess.DotnetAsync(app, BuildTimeout, ConsumerEnvironment, TestContext.Current.CancellationToken,
            "build", "-c", "Release", "--disable-build-servers", "-nologo");

    /// <summary>The environment of every consumer process: this run's packages folder.</summary>
    public IReadOnlyDictionary<string, string?> ConsumerEnvironment => new Dictionary<string, string?>
    {
        ["NUGET_PACKAGES"] = PackagesDirectory,
        ["POLYSTORE_CONFIG_DIR"] = ConfigDirectory,
    };

    /// <summary>
    /// Whether the package NuGet extracted into <paramref name="packageFolder"/> (a packages folder's id/version folder)
    /// is, byte for byte, the one this run packed: not a package of the same name and version from another source or cache.
    /// </summary>
    public bool IsFromTheFeed(string id, string packageFolder)
    {
        var extracted = Path.Combine(packageFolder, $"{id.ToLowerInvariant()}.{Version}.nupkg");
        return File.Exists(extracted) && SHA512.HashData(File.ReadAllBytes(extracted)).AsSpan().SequenceEqual(SHA512.HashData(File.ReadAllBytes(Packages[id])));
    }

    /// <summary>The nuspec of a package in the feed.</summary>
    public XDocument Nuspec(string id)
    {
        using var zip = ZipFile.OpenRead(Packages[id]);
        var entry = zip.Entries.Single(e => !e.FullName.Contains('/', StringComparison.Ordinal) && e.FullName.EndsWith(".nuspec", StringComparison.OrdinalIgnoreCase));
        using var stream = entry.Open();
        return XDocument.Load(stream);
    }

    private void WriteNuGetConfig(string path)
    {
        XElement Add(string key, string value) => new("add", new XAttribute("key", key), new XAttribute("value", value));
        XElement Map(string key, string pattern) => new("packageSource", new XAttribute("key", key), new XElement("package", new XAttribute("pattern", pattern)));
        const string local = "polystore-local";
        new XDocument(new XElement("configuration",
            new XElement("packageSources", new XElement("clear"), Add(local, FeedDirectory), MachineSources.Select(s => Add(s.Name, s.Url))),
            new XElement("fallbackPackageFolders", new XElement("clear"), Add("machine", MachinePackagesFolder)),
            // Polystore.* can only come from the feed just packed, never from a public source with the same names.
            new XElement("packageSourceMapping", Map(local, "Polystore.*"), MachineSources.Select(s => Map(s.Name, "*")))))
            .Save(path);
    }

    private async Task<IReadOnlyList<(string, string)>> ListMachineSourcesAsync()
    {
        var list = await DotnetProcess.DotnetAsync(Root, RunTimeout, null, TestContext.Current.CancellationToken, "nuget", "list", "source", "--format", "Detailed");
        if (list.ExitCode != 0) throw new InvalidOperationException("listing the machine's NuGet sources failed: " + list.Describe());
        var sources = new List<(string, string)>();
        var lines = list.Stdout.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i + 1 < lines.Length; i++)
        {
            if (SourceLine().Match(lines[i]) is { Success: true } m && m.Groups[2].Value == "Enabled")
                sources.Add((m.Groups[1].Value, lines[i + 1]));
        }
        return sources.Count > 0 ? sources : throw new InvalidOperationException("the machine has no enabled NuGet source:\n" + list.Stdout);
    }

    private async Task<string> MachinePackagesFolderAsync()
    {
        var list = await DotnetProcess.DotnetAsync(Root, RunTimeout, null, TestContext.Current.CancellationToken, "nuget", "locals", "global-packages", "--list");
        var folder = list.Stdout.Split(':', 2) is [_, var value] ? value.Trim() : "";
        return list.ExitCode == 0 && folder.Length > 0 ? folder : throw new InvalidOperationException("finding the global packages folder failed: " + list.Describe());
    }

    private string ReadVersion() =>
        XDocument.Load(Path.Combine(RepositoryRoot, "Directory.Build.props")).Descendants("VersionPrefix").Select(e => e.Value.Trim()).SingleOrDefault()
        ?? throw new InvalidOperationException("Directory.Build.props sets no VersionPrefix");

    private List<string> ReadSolutionProjects() =>
        XDocument.Load(Path.Combine(RepositoryRoot, "Polystore.slnx")).Descendants("Project")
            .Select(p => ((string?)p.Attribute("Path") ?? "").Replace('\\', '/')).ToList();

    private List<ShippedProject> ReadShippedProjects() =>
        ReadSolutionProjects().Where(p => p.StartsWith("src/", StringComparison.Ordinal)).Select(p =>
        {
            var project = XDocument.Load(Path.Combine(RepositoryRoot, p));
            string? Property(string name) => project.Descendants(name).Select(e => e.Value.Trim()).FirstOrDefault();
            var name = Path.GetFileNameWithoutExtension(p);
            return new ShippedProject(name, Property("PackageId") ?? Property("AssemblyName") ?? name,
                Property("AssemblyName") ?? name, string.Equals(Property("PackAsTool"), "true", StringComparison.OrdinalIgnoreCase));
        }).ToList();

    private string PackageId(string nupkg)
    {
        var file = Path.GetFileNameWithoutExtension(nupkg);
        var suffix = "." + Version;
        return file.EndsWith(suffix, StringComparison.Ordinal) ? file[..^suffix.Length] : file;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Polystore.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no Polystore.slnx above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^\d+\.\s+(.+?)\s+\[(Enabled|Disabled)\]$")]
    private static partial Regex SourceLine();
}

/// <summary>A project under src/: its package id, assembly name, and whether it packs as a .NET tool.</summary>
public sealed record ShippedProject(string Name, string PackageId, string AssemblyName, bool IsTool);

/// <summary>The tests that share one pack.</summary>
[CollectionDefinition(Name)]
public sealed class PackedFeedCollection : ICollectionFixture<PackedFeed>
{
    public const string Name = "packed feed";
}
