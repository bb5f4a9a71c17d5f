using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Hosting.Tests;

/// <summary>Polystore in a real generic host, configured the .NET way: appsettings.json, environment, and the YAML folder as a source.</summary>
public sealed class ConfigurationHostingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_host_binds_the_yaml_folder_and_appsettings_json_layered_and_serves_from_them()
    {
        using var root = new TempFolder();
        // The YAML folder is one more source; appsettings.json (added after it) overrides one key, PascalCase.
        File.WriteAllText(Path.Combine(root.Path, "appsettings.json"), """{ "Polystore": { "Postgres": { "Pool": { "MaxSize": 3 } } } }""");
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = root.Path, DisableDefaults = true });
        builder.Configuration.AddPolystoreYaml(TestServers.ConfigDirectory).AddJsonFile("appsettings.json");
        builder.Services.AddPolystore(builder.Configuration.GetSection("Polystore")).AddPostgres().AddRedis();
        using var host = builder.Build();

        await host.StartAsync(Ct);
        try
        {
            var sources = host.Services.GetRequiredService<PostgresDataSources>();
            Assert.Equal(3, sources.Settings.Pool.MaxSize);
            var config = host.Services.GetRequiredService<PolystoreConfig>();
            Assert.Equal("appsettings.json", Path.GetFileName(config.SourceOf(StoreNames.Postgres, "pool.max_size").Provider));
            var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(Ct);
            Assert.Equal(HealthStatus.Healthy, health.Status);
            Assert.Equal(["postgres", "redis"], health.Entries.Keys.Order());
        }
        finally
        {
            await host.StopAsync(Ct);
        }
    }

    [Fact]
    public async Task A_bad_value_in_appsettings_json_stops_the_host_at_start_naming_the_key_and_file_without_the_password()
    {
        using var root = new TempFolder();
        File.WriteAllText(Path.Combine(root.Path, "appsettings.json"), """
            { "Polystore": { "Postgres": { "Connection": { "Host": "127.0.0.1", "Password": "hunter22" }, "Pool": { "MaxSize": 0 } } } }
            """);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = root.Path, DisableDefaults = true });
        builder.Configuration.AddJsonFile("appsettings.json");
        builder.Services.AddPolystore(builder.Configuration.GetSection("Polystore")).AddConfiguredStores();
        using var host = builder.Build();

        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Ct));

        var failure = Assert.Single(e.Failures);
        Assert.Contains("Polystore:Postgres:Pool:MaxSize", failure, StringComparison.Ordinal);
        Assert.Contains("appsettings.json", failure, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter22", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_umbrella_adds_only_the_stores_the_section_names()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Polystore:Redis:Connection:Url"] = "redis://127.0.0.1:6379",
        }).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddPolystore(configuration.GetSection("Polystore")).AddConfiguredStores();
        using var provider = services.BuildServiceProvider();

        Assert.Equal(["redis"], provider.GetServices<IStoreDoctor>().Select(d => d.Store));
        Assert.Null(provider.GetService<PostgresDataSources>());
    }

    private sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("polystore-host-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
