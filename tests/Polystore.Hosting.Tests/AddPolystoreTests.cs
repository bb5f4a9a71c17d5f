using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Polystore.Core.Configuration;
using Polystore.Postgres;
using Polystore.Testing;
using StackExchange.Redis;

namespace Polystore.Hosting.Tests;

public sealed class AddPolystoreTests
{
    [Fact]
    public async Task Registers_configured_stores_and_reports_them_healthy()
    {
        await using var provider = new ServiceCollection().AddLogging().AddPolystore(TestServers.ConfigDirectory).BuildServiceProvider();

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
        var dir = Directory.CreateTempSubdirectory("polystore-hosting-").FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "postgresql.yaml"), "connection:\n  host: 127.0.0.1\n  port: 1\n  password: hunter22\npool:\n  pool_timeout: 2\n", TestContext.Current.CancellationToken);
        await using var provider = new ServiceCollection().AddLogging().AddPolystore(dir).BuildServiceProvider();

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(TestContext.Current.CancellationToken);

        Assert.Equal(HealthStatus.Unhealthy, report.Status);
        Assert.DoesNotContain("hunter22", report.Entries["postgres"].Description, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_config_fails_at_registration()
    {
        var dir = Directory.CreateTempSubdirectory("polystore-hosting-").FullName;
        File.WriteAllText(Path.Combine(dir, "redis.yaml"), "pool:\n  socket_timeout: -1\n");
        var e = Assert.Throws<ConfigException>(() => new ServiceCollection().AddLogging().AddPolystore(dir));
        Assert.Equal("pool.socket_timeout", Assert.Single(e.Errors).KeyPath);
    }
}
