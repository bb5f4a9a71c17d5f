using System.IO.Compression;
using System.Xml.Linq;

namespace Polystore.Packaging.Tests;

/// <summary>What the packed packages hold: one per shipped project, one version, the shared metadata, usable symbols.</summary>
[Collection(PackedFeedCollection.Name)]
public sealed class PackageContentTests(PackedFeed feed)
{
    [Fact]
    public void Every_shipped_project_and_nothing_else_is_packed_with_one_version()
    {
        Assert.Equal(feed.Projects.Select(p => p.PackageId).Order(StringComparer.OrdinalIgnoreCase),
            feed.Packages.Keys.Order(StringComparer.OrdinalIgnoreCase), StringComparer.OrdinalIgnoreCase);
        foreach (var id in feed.Packages.Keys)
        {
            Assert.Equal(feed.Version, Metadata(id, "version"));
            Assert.True(File.Exists(Path.ChangeExtension(feed.Packages[id], ".snupkg")), $"{id} has no symbol package");
        }
        // The tool is the CLI, installed as `polystore`.
        var tool = Assert.Single(feed.Projects, p => p.IsTool);
        Assert.Equal("Polystore.Cli", tool.PackageId);
        Assert.Contains(feed.Nuspec(tool.PackageId).Descendants().Where(e => e.Name.LocalName == "packageType"), e => (string?)e.Attribute("name") == "DotnetTool");
        Assert.Contains("Name=\"polystore\"", Entry(tool.PackageId, $"tools/net10.0/any/DotnetToolSettings.xml"), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_package_carries_the_shared_metadata_its_readme_and_the_license()
    {
        var license = File.ReadAllText(Path.Combine(feed.RepositoryRoot, "LICENSE"));
        Assert.Contains("Copyright (c) 2026 Polystore contributors", license, StringComparison.Ordinal);
        foreach (var id in feed.Packages.Keys)
        {
            Assert.Equal("Polystore contributors", Metadata(id, "authors"));
            Assert.Equal("Copyright (c) 2026 Polystore contributors", Metadata(id, "copyright"));
            var licenseElement = Element(id, "license");
            Assert.Equal(("expression", "MIT"), ((string?)licenseElement.Attribute("type"), licenseElement.Value));
            Assert.Equal("README.md", Metadata(id, "readme"));
            Assert.Contains("polystore", Metadata(id, "tags").Split(' '));
            Assert.False(string.IsNullOrWhiteSpace(Metadata(id, "description")), $"{id} has no description");
            Assert.Equal("git", (string?)Element(id, "repository").Attribute("type"));
            Assert.Equal(license, Entry(id, "LICENSE"));

            var readme = Entry(id, "README.md");
            Assert.Equal(File.ReadAllText(Path.Combine(feed.RepositoryRoot, "src", feed.Projects.Single(p => p.PackageId == id).Name, "README.md")), readme);
            Assert.Contains("dotnet " + (id == "Polystore.Cli" ? "tool install" : "add package") , readme, StringComparison.Ordinal);
            Assert.Contains(" " + id, readme, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Libraries_depend_on_each_other_at_the_same_version()
    {
        foreach (var id in feed.Packages.Keys)
        {
            // Exactly ([1.0.0], not "1.0.0 or later"): the packages share internals, so versions must not mix.
            var polystoreDependencies = Dependencies(id).Where(d => feed.Packages.ContainsKey(d.Id)).ToList();
            Assert.All(polystoreDependencies, d => Assert.Equal($"[{feed.Version}]", d.Version));
        }
        // The tool carries everything it runs: it depends on no package.
        Assert.Empty(Dependencies("Polystore.Cli"));
    }

    [Fact]
    public void The_Postgres_and_Redis_packages_do_not_bring_MongoDB()
    {
        var closure = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var pending = new Queue<string>(["Polystore.Postgres", "Polystore.Redis"]);
        while (pending.TryDequeue(out var id))
        {
            if (!closure.Add(id) || !feed.Packages.ContainsKey(id)) continue;
            foreach (var dependency in Dependencies(id)) pending.Enqueue(dependency.Id);
        }
        Assert.DoesNotContain(closure, id => id.StartsWith("MongoDB", StringComparison.OrdinalIgnoreCase) || id == "Polystore.Mongo");
    }

    [Fact]
    public void Assemblies_are_deterministic_name_no_build_machine_path_and_embed_their_sources_in_the_symbol_package()
    {
        var problems = new List<string>();
        foreach (var (id, nupkg) in feed.Packages)
        {
            using var package = ZipFile.OpenRead(nupkg);
            using var symbols = ZipFile.OpenRead(Path.ChangeExtension(nupkg, ".snupkg"));
            var assemblies = package.Entries.Where(e => e.FullName.EndsWith(".dll", StringComparison.Ordinal) && Path.GetFileName(e.FullName).StartsWith("polystore", StringComparison.OrdinalIgnoreCase)).ToList();
            Assert.NotEmpty(assemblies);
            foreach (var assembly in assemblies)
            {
                var pdbPath = Path.ChangeExtension(assembly.FullName, ".pdb");
                var pdb = symbols.GetEntry(pdbPath);
                if (pdb is null) { problems.Add($"{id}: the symbol package has no {pdbPath}"); continue; }
                var bytes = Read(assembly);
                problems.AddRange(AssemblyCheck.SymbolProblems($"{id}:{assembly.FullName}", bytes, Read(pdb)));
                var informational = AssemblyCheck.InformationalVersion(bytes);
                if (informational?.Split('+')[0] != feed.Version) problems.Add($"{id}:{assembly.FullName}: informational version {informational}");
            }
        }
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    private string Metadata(string id, string name) => Element(id, name).Value.Trim();

    private XElement Element(string id, string name) =>
        feed.Nuspec(id).Descendants().FirstOrDefault(e => e.Name.LocalName == name) ?? throw new Xunit.Sdk.XunitException($"{id}'s nuspec has no <{name}>");

    private List<(string Id, string Version)> Dependencies(string id) =>
        feed.Nuspec(id).Descendants().Where(e => e.Name.LocalName == "dependency")
            .Select(e => ((string)e.Attribute("id")!, (string?)e.Attribute("version") ?? "")).ToList();

    private string Entry(string id, string path)
    {
        using var package = ZipFile.OpenRead(feed.Packages[id]);
        var entry = package.GetEntry(path) ?? throw new Xunit.Sdk.XunitException($"{id} has no {path}");
        using var reader = new StreamReader(entry.Open());
        return reader.ReadToEnd();
    }

    private static byte[] Read(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
