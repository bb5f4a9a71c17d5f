using System.Globalization;
using System.Text.Json;
using Polystore.Core.Configuration;

namespace Polystore.Packaging.Tests;

/// <summary>The packages used as a consumer would: fresh apps outside the repository, and the installed tool.</summary>
[Collection(PackedFeedCollection.Name)]
public sealed class ConsumerTests(PackedFeed feed)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_fresh_ASP_NET_Core_app_with_the_packages_it_needs_serves_its_endpoints_and_refuses_a_bad_setting()
    {
        var app = feed.CreateApp("App", "consumer-app");
        var build = await feed.BuildAppAsync(app);
        Assert.True(build.ExitCode == 0, build.Describe());
        // Pay for what you use: PostgreSQL, Redis and the ASP.NET Core policy, and nothing of MongoDB.
        AssertRestoredFromTheFeed(app, "Polystore.AspNetCore", "Polystore.OpenTelemetry", "Polystore.Postgres", "Polystore.Redis", "Polystore.Core");
        var output = Path.Combine(app, "bin", "Release", "net10.0");
        Assert.Empty(Directory.GetFiles(output, "MongoDB*.dll"));
        Assert.Empty(Directory.GetFiles(output, "Polystore.Mongo*.dll"));

        var run = await DotnetProcess.DotnetAsync(app, PackedFeed.RunTimeout, AppEnvironment(), Ct,
            Path.Combine("bin", "Release", "net10.0", "ConsumerApp.dll"), "--self-test");
        Assert.True(run.ExitCode == 0, run.Describe());
        var lines = run.Stdout.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"polystore: {feed.Version}", lines[0].Split('+')[0]);   // +commit when built from a git checkout
        Assert.Equal(9, lines.Length);
        Assert.Equal(
            [
                "bulk upsert: inserted 100; then inserted 10, updated 10",
                "keyset: 1..40, 41..80, 81..110 in order",
                "keyset: a forged cursor is answered 400 Invalid cursor",
                "cache: 'hello, ada' 3 times, after 1 factory call",
            ],
            lines[1..5]);
        // Retry-After counts the whole seconds until the first request leaves the 60-s window.
        Assert.Matches(@"^limiter: 200, 200, 429 Retry-After: ([1-9]|[1-5][0-9]|60)$", lines[5]);
        Assert.Equal(["limiter: another key 200", "health: Healthy", "done"], lines[6..]);

        // A bad value from the environment stops the app before it serves, naming the key and where it came from.
        var environment = AppEnvironment();
        environment["Polystore__Postgres__Pool__MaxSize"] = "-1";
        var refused = await DotnetProcess.DotnetAsync(app, PackedFeed.RunTimeout, environment, Ct,
            Path.Combine("bin", "Release", "net10.0", "ConsumerApp.dll"), "--self-test");
        Assert.True(refused.ExitCode != 0, refused.Describe());
        Assert.Contains("Polystore:Postgres:Pool:MaxSize (environment variable Polystore__Postgres__Pool__MaxSize)", refused.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("bulk upsert", refused.Stdout, StringComparison.Ordinal);
        foreach (var secret in PolystoreConfig.Load(feed.ConfigDirectory).Secrets())
            Assert.DoesNotContain(secret, refused.Stdout + refused.Stderr, StringComparison.Ordinal);
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
        // This app registers its stores through the builder: services.AddPolystore(dir).AddPostgres().AddRedis().
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
    /// The web app's environment: the private servers' connection settings as the app's configuration would take them
    /// in production (environment variables over its appsettings.json), its own schema, and no config folder to fall back on.
    /// </summary>
    private Dictionary<string, string?> AppEnvironment()
    {
        var config = PolystoreConfig.Load(feed.ConfigDirectory);
        var postgres = config.Postgres ?? throw new InvalidOperationException($"{feed.ConfigDirectory} has no postgresql.yaml");
        var redis = config.Redis ?? throw new InvalidOperationException($"{feed.ConfigDirectory} has no redis.yaml");
        var environment = new Dictionary<string, string?>(feed.ConsumerEnvironment)
        {
            ["POLYSTORE_CONFIG_DIR"] = null,
            ["App__Schema"] = $"consumer_{Guid.NewGuid():N}"[..21],
            ["Polystore__Postgres__Connection__Host"] = postgres.Connection.Host,
            ["Polystore__Postgres__Connection__Port"] = postgres.Connection.Port.ToString(CultureInfo.InvariantCulture),
            ["Polystore__Postgres__Connection__Database"] = postgres.Connection.Database,
            ["Polystore__Postgres__Connection__User"] = postgres.Connection.User,
            ["Polystore__Postgres__Connection__Password"] = postgres.Connection.Password,
            ["Polystore__Postgres__Connection__Sslmode"] = postgres.Connection.Sslmode.ToString(),
            ["Polystore__Redis__Connection__Url"] = redis.Connection.Url,
            ["Polystore__Redis__Connection__Password"] = redis.Connection.Password,
            ["Polystore__Redis__Connection__Db"] = redis.Connection.Db.ToString(CultureInfo.InvariantCulture),
        };
        // The replicas too: the "postgres" health check pings each of them.
        for (var i = 0; i < postgres.Replication.ReadReplicas.Count; i++)
        {
            environment[$"Polystore__Postgres__Replication__ReadReplicas__{i}__Host"] = postgres.Replication.ReadReplicas[i].Host;
            environment[$"Polystore__Postgres__Replication__ReadReplicas__{i}__Port"] = postgres.Replication.ReadReplicas[i].Port.ToString(CultureInfo.InvariantCulture);
        }
        return environment;
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
}
