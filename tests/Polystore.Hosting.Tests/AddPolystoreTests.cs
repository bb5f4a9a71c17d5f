using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Core.Diagnostics;
using Polystore.Postgres;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Hosting.Tests;

public sealed class AddPolystoreTests
{
    [Fact]
    public async Task Registers_configured_stores_and_reports_them_healthy()
    {
        await using var provider = Provider(TestServers.ConfigDirectory);

        var sources = provider.GetRequiredService<PostgresDataSources>();
        Assert.Same(sources.Primary, provider.GetRequiredService<NpgsqlDataSource>());
        await using (var connection = await provider.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync(TestContext.Current.CancellationToken))
        await using (var command = new NpgsqlCommand("SELECT 1", connection))
            Assert.Equal(1, await command.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        var redis = provider.GetRequiredService<IConnectionMultiplexer>();
        Assert.True(redis.IsConnected);

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(TestContext.Current.CancellationToken);
        Assert.Equal(HealthStatus.Healthy, report.Status);
        Assert.Contains("postgres", report.Entries.Keys);
        Assert.Contains("redis", report.Entries.Keys);
        Assert.Equal(TestServers.Mongo is not null, report.Entries.ContainsKey("mongo"));
    }

    [Fact]
    public async Task An_unreachable_store_is_unhealthy_without_its_password()
    {
        using var folder = TempFolder.Create("polystore-hosting-");
        var dir = folder.FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "postgresql.yaml"), "connection:\n  host: 127.0.0.1\n  port: 1\n  password: hunter22\npool:\n  pool_timeout: 2\n", TestContext.Current.CancellationToken);
        await using var provider = Provider(dir);

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(TestContext.Current.CancellationToken);

        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.DoesNotContain("hunter22", report.Entries["postgres"].Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_black_holed_store_is_unhealthy_once_its_check_times_out()
    {
        // A port that accepts connections and never answers: the TCP handshake completes, the startup reply never comes.
        using var hole = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        hole.Start();
        var port = ((System.Net.IPEndPoint)hole.LocalEndpoint).Port;
        using var folder = TempFolder.Create("polystore-hosting-");
        var dir = folder.FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "postgresql.yaml"), $"connection:\n  host: 127.0.0.1\n  port: {port}\n  password: hunter22\npool:\n  pool_timeout: 30\n", TestContext.Current.CancellationToken);
        await using var provider = Provider(dir, TimeSpan.FromMilliseconds(500));

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(TestContext.Current.CancellationToken);

        var entry = report.Entries["postgres"];
        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        // The health service cancelled the check at its timeout, long before the driver's own 30 s connect timeout.
        Assert.IsAssignableFrom<OperationCanceledException>(entry.Exception);
    }

    [Fact]
    public async Task The_doctor_resolves_from_the_container_and_runs_over_its_clients()
    {
        await using var provider = Provider(TestServers.ConfigDirectory);
        var doctor = provider.GetRequiredService<Polystore.Core.Diagnostics.PolystoreDoctor>();

        var report = await doctor.RunAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Contains(report.Checks, c => c.Store == StoreNames.Postgres);
        Assert.Contains(report.Checks, c => c.Store == StoreNames.Redis);
        Assert.DoesNotContain(report.Findings, f => f.Check is "postgres.reachable" or "redis.reachable");
        var secrets = provider.GetRequiredService<PolystoreConfig>().Secrets();
        Assert.NotEmpty(secrets);
        Assert.All(report.Findings, f => Assert.All(secrets, s => Assert.DoesNotContain(s, f.Title + f.Remedy + string.Join(" ", f.Evidence.Values), StringComparison.Ordinal)));
    }

    [Fact]
    public void A_bad_config_fails_at_registration()
    {
        using var folder = TempFolder.Create("polystore-hosting-");
        var dir = folder.FullName;
        File.WriteAllText(Path.Combine(dir, "redis.yaml"), "pool:\n  socket_timeout: -1\n");
        var e = Assert.Throws<ConfigException>(() => new ServiceCollection().AddLogging().AddPolystore(dir));
        Assert.Equal("pool.socket_timeout", Assert.Single(e.Errors).KeyPath);
    }

    [Fact]
    public void A_store_added_but_not_configured_fails_start_up_validation_naming_where_to_configure_it()
    {
        using var folder = TempFolder.Create("polystore-hosting-");
        var dir = folder.FullName;
        File.WriteAllText(Path.Combine(dir, "redis.yaml"), "connection:\n  url: redis://127.0.0.1:6379\n");
        var services = new ServiceCollection().AddLogging();
        services.AddPolystore(dir).AddRedis().AddPostgres();
        using var provider = services.BuildServiceProvider();

        // What a host runs before it starts (ValidateOnStart).
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());

        var failure = Assert.Single(e.Failures);
        Assert.Contains("postgres is added to Polystore but not configured", failure, StringComparison.Ordinal);
        Assert.Contains("postgresql.yaml", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Each_store_registers_once_and_only_what_it_is_asked_for()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddPolystore(TestServers.ConfigDirectory).AddPostgres().AddPostgres().AddRedis();
        using var provider = services.BuildServiceProvider();

        Assert.Equal(["postgres", "redis"], provider.GetServices<IStoreDoctor>().Select(d => d.Store).Order());
        Assert.Equal(["postgres", "redis"], provider.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations.Select(r => r.Name).Order());
        Assert.Null(provider.GetService<Polystore.Mongo.MongoStore>());
        Assert.Throws<InvalidOperationException>(() => services.AddPolystore(TestServers.ConfigDirectory));
    }

    private static ServiceProvider Provider(string dir, TimeSpan? healthCheckTimeout = null)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddPolystore(dir, healthCheckTimeout).AddConfiguredStores();
        return services.BuildServiceProvider();
    }
}
