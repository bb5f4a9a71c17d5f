using System.IO.Compression;
using System.Text.Json;

namespace Polystore.Packaging.Tests;

/// <summary>The packages used as a consumer would: fresh apps outside the repository, and the installed tool.</summary>
[Collection(PackedFeedCollection.Name)]
public sealed class ConsumerTests(PackedFeed feed)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_fresh_app_referencing_the_packages_runs_against_the_private_servers()
    {
        var app = feed.CreateApp("App", "consumer-app");
        var build = await feed.BuildAppAsync(app);
        Assert.True(build.ExitCode == 0, build.Describe());
        AssertRestoredFromTheFeed(app, "Polystore.Hosting", "Polystore.Integration", "Polystore.Postgres", "Polystore.Redis", "Polystore.Mongo", "Polystore.Core");

        var run = await DotnetProcess.DotnetAsync(app, PackedFeed.RunTimeout, feed.ConsumerEnvironment, Ct,
            Path.Combine("bin", "Release", "net10.0", "ConsumerApp.dll"), feed.ConfigDirectory);
        Assert.True(run.ExitCode == 0, run.Describe());
        var lines = run.Stdout.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"polystore: {feed.Version}", lines[0].Split('+')[0]);   // +commit when built from a git checkout
        Assert.Equal(
            [
                "bulk upsert: inserted 100; then inserted 10, updated 10",
                "keyset: 110 rows in 3 pages, in order",
                "cache: 'hello' after 1 factory call(s)",
                "limiter: allowed, allowed, denied",
                "done",
            ],
            lines[1..]);
    }

    [Fact]
    public async Task The_tool_installs_from_the_feed_and_answers_help_and_ping()
    {
        var work = Directory.CreateDirectory(Path.Combine(feed.Root, "tool-install")).FullName;
        var tools = Path.Combine(feed.Root, "tools");
        var install = await DotnetProcess.DotnetAsync(work, PackedFeed.BuildTimeout, feed.ConsumerEnvironment, Ct,
            "tool", "install", "--tool-path", tools, "--add-source", feed.FeedDirectory, "--version", feed.Version, "Polystore.Cli");
        Assert.True(install.ExitCode == 0, install.Describe());
        // The tool came from this feed, not from another source that has a package of the same name.
        Assert.True(feed.IsFromTheFeed("Polystore.Cli", Path.Combine(tools, ".store", "polystore.cli", feed.Version, "polystore.cli", feed.Version)),
            "the installed Polystore.Cli is not the package this run packed");

        var polystore = Path.Combine(tools, "polystore");
        var help = await DotnetProcess.RunAsync(polystore, ["--help"], work, PackedFeed.RunTimeout, feed.ConsumerEnvironment, Ct);
        Assert.True(help.ExitCode == 0, help.Describe());
        Assert.Contains("Usage:", help.Stdout, StringComparison.Ordinal);
        Assert.Contains("ping", help.Stdout, StringComparison.Ordinal);

        var ping = await DotnetProcess.RunAsync(polystore, ["ping", "--dir", feed.ConfigDirectory, "--json"], work, PackedFeed.RunTimeout, feed.ConsumerEnvironment, Ct);
        Assert.True(ping.ExitCode == 0, ping.Describe());
        using var json = JsonDocument.Parse(ping.Stdout);
        var endpoints = json.RootElement.EnumerateArray().Select(e => (Store: e.GetProperty("store").GetString(), Reachable: e.GetProperty("reachable").GetBoolean())).ToList();
        Assert.Contains(endpoints, e => e.Store == "postgres");
        Assert.Contains(endpoints, e => e.Store == "redis");
        Assert.All(endpoints, e => Assert.True(e.Reachable, $"{e.Store} unreachable:\n{ping.Stdout}"));
    }

    [Fact]
    public async Task An_app_with_only_the_Postgres_and_Redis_packages_carries_no_MongoDB_assembly()
    {
        // This app registers its stores through the builder (services.AddPolystore(dir).AddPostgres().AddRedis()).
        if (!CoreHasTheBuilder())
            Assert.Skip("Polystore.Core as packed has no Polystore.PolystoreBuilder yet: the store packages cannot register themselves "
                + "(services.AddPolystore(dir).AddPostgres().AddRedis()), which ConsumerApp/StoresOnly uses");

        var app = feed.CreateApp("StoresOnly", "stores-only-app");
        var build = await feed.BuildAppAsync(app);
        Assert.True(build.ExitCode == 0, build.Describe());
        AssertRestoredFromTheFeed(app, "Polystore.Postgres", "Polystore.Redis", "Polystore.Core");

        var output = Path.Combine(app, "bin", "Release", "net10.0");
        Assert.Empty(Directory.GetFiles(output, "MongoDB*.dll"));
        Assert.DoesNotContain("MongoDB", File.ReadAllText(Path.Combine(output, "StoresOnlyApp.deps.json")), StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(output, "Polystore.Mongo*.dll"));

        var run = await DotnetProcess.DotnetAsync(app, PackedFeed.RunTimeout, feed.ConsumerEnvironment, Ct,
            Path.Combine("bin", "Release", "net10.0", "StoresOnlyApp.dll"), feed.ConfigDirectory);
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.Contains("postgres: 42", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("redis: ping answered", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("mongodb assemblies loaded: 0", run.Stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// The app's restore took each Polystore package from this run's feed (same bytes), into this run's packages
    /// folder, and referenced no project.
    /// </summary>
    private void AssertRestoredFromTheFeed(string app, params string[] ids)
    {
        using var assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(app, "obj", "project.assets.json")));
        var libraries = assets.RootElement.GetProperty("libraries").EnumerateObject().ToList();
        Assert.All(libraries, l => Assert.Equal("package", l.Value.GetProperty("type").GetString()));
        var polystore = libraries.Select(l => l.Name.Split('/')[0]).Where(n => n.StartsWith("Polystore.", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(ids.Order(StringComparer.OrdinalIgnoreCase), polystore.Order(StringComparer.OrdinalIgnoreCase), StringComparer.OrdinalIgnoreCase);
        foreach (var id in ids)
        {
            var folder = Path.Combine(feed.PackagesDirectory, id.ToLowerInvariant(), feed.Version);
            Assert.True(Directory.Exists(folder), $"{id} was not restored into this run's packages folder {feed.PackagesDirectory}");
            Assert.True(feed.IsFromTheFeed(id, folder), $"the restored {id} is not the package this run packed");
        }
    }

    private bool CoreHasTheBuilder()
    {
        using var package = ZipFile.OpenRead(feed.Packages["Polystore.Core"]);
        using var stream = package.GetEntry("lib/net10.0/Polystore.Core.dll")!.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return AssemblyCheck.DefinesType(copy.ToArray(), "Polystore", "PolystoreBuilder");
    }
}
