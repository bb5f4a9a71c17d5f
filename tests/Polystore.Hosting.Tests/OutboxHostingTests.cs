using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;
using Polystore.Samples.Users;
using Polystore.Testing;

namespace Polystore.Hosting.Tests;

public sealed class OutboxHostingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_hosted_dispatcher_projects_commands_and_its_health_check_reports_the_backlog()
    {
        var schema = TestServers.UniqueName("host");
        var outbox = new OutboxStore(schema);
        var services = new ServiceCollection().AddLogging();
        var polystore = services.AddPolystore(TestServers.ConfigDirectory);
        services.AddSingleton(sp => new PostgresJsonbReadModelStore<UserProfile>(sp.GetRequiredService<NpgsqlDataSource>(), schema, "user_profiles"));
        services.AddSingleton(sp => new UserProfileProjection(sp.GetRequiredService<PostgresJsonbReadModelStore<UserProfile>>()));
        polystore.AddOutboxDispatcher<UserProfileProjection>(o =>
        {
            o.Schema = schema;
            o.PollInterval = TimeSpan.FromMilliseconds(50);
        });
        await using var provider = services.BuildServiceProvider();
        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();
        var commands = new UserCommandHandler(dataSource, outbox);
        await commands.EnsureCreatedAsync(Ct);
        var store = provider.GetRequiredService<PostgresJsonbReadModelStore<UserProfile>>();
        await store.EnsureCreatedAsync(Ct);
        try
        {
            var hosted = provider.GetServices<IHostedService>().ToList();
            foreach (var service in hosted) await service.StartAsync(Ct);
            var id = await commands.CreateUserAsync(new CreateUser($"{Guid.NewGuid():N}@host.test", "Hosted", "eu"), Ct);
            for (var i = 0; i < 600 && await store.GetAsync(id.ToString(System.Globalization.CultureInfo.InvariantCulture), Ct) is null; i++) await Task.Delay(50, Ct);
            foreach (var service in hosted) await service.StopAsync(Ct);

            Assert.Equal("Hosted", (await store.GetAsync(id.ToString(System.Globalization.CultureInfo.InvariantCulture), Ct))!.Document.Name);
            var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Tags.Contains("outbox"), Ct);
            var entry = Assert.Single(report.Entries);
            Assert.Equal($"outbox:{schema}:user_profiles", entry.Key);
            Assert.Equal(HealthStatus.Healthy, entry.Value.Status);
        }
        finally
        {
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            await using var drop = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
            await drop.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task RetentionMaxAge_makes_the_host_prune_what_the_dispatcher_delivered()
    {
        var schema = TestServers.UniqueName("hostprune");
        var outbox = new OutboxStore(schema);
        var services = new ServiceCollection().AddLogging();
        var polystore = services.AddPolystore(TestServers.ConfigDirectory);
        services.AddSingleton(sp => new PostgresJsonbReadModelStore<UserProfile>(sp.GetRequiredService<NpgsqlDataSource>(), schema, "user_profiles"));
        services.AddSingleton(sp => new UserProfileProjection(sp.GetRequiredService<PostgresJsonbReadModelStore<UserProfile>>()));
        polystore.AddOutboxDispatcher<UserProfileProjection>(o =>
        {
            o.Schema = schema;
            o.PollInterval = TimeSpan.FromMilliseconds(50);
            o.RetentionMaxAge = TimeSpan.Zero; // every delivered event
            o.RetentionInterval = TimeSpan.FromMilliseconds(100);
        });
        await using var provider = services.BuildServiceProvider();
        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();
        var commands = new UserCommandHandler(dataSource, outbox);
        await commands.EnsureCreatedAsync(Ct);
        await provider.GetRequiredService<PostgresJsonbReadModelStore<UserProfile>>().EnsureCreatedAsync(Ct);
        var hosted = provider.GetServices<IHostedService>().ToList();
        Assert.Single(hosted, h => h.GetType().Name == "OutboxRetentionService");
        try
        {
            foreach (var service in hosted) await service.StartAsync(Ct);
            for (var i = 0; i < 5; i++) await commands.CreateUserAsync(new CreateUser($"{Guid.NewGuid():N}@host.test", $"Pruned {i}", "eu"), Ct);
            await using var count = dataSource.CreateCommand($"SELECT (SELECT count(*) FROM \"{schema}\".outbox), (SELECT count(*) FROM \"{schema}\".user_profiles)");
            long events = -1, profiles = -1;
            for (var i = 0; i < 600 && (events != 0 || profiles != 5); i++)
            {
                await Task.Delay(50, Ct);
                await using var reader = await count.ExecuteReaderAsync(Ct);
                await reader.ReadAsync(Ct);
                (events, profiles) = (reader.GetInt64(0), reader.GetInt64(1));
            }
            foreach (var service in hosted) await service.StopAsync(Ct);
            Assert.Equal((0L, 5L), (events, profiles)); // all five projected, then removed from the outbox
        }
        finally
        {
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            await using var drop = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
            await drop.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    public static TheoryData<string, Action<OutboxDispatcherHostingOptions>> BadOptions => new()
    {
        { nameof(OutboxDispatcherHostingOptions.Schema), o => o.Schema = "Bad-Schema" },
        { nameof(OutboxDispatcherHostingOptions.BatchSize), o => o.BatchSize = 0 },
        { nameof(OutboxDispatcherHostingOptions.PollInterval), o => o.PollInterval = TimeSpan.Zero },
        { nameof(OutboxDispatcherHostingOptions.MaxAttempts), o => o.MaxAttempts = 0 },
        { nameof(OutboxDispatcherHostingOptions.RetryMaxDelay), o => o.RetryMaxDelay = TimeSpan.FromMilliseconds(1) },
        { nameof(OutboxDispatcherHostingOptions.DegradedAfter), o => o.DegradedAfter = TimeSpan.Zero },
        { nameof(OutboxDispatcherHostingOptions.UnhealthyAfter), o => o.UnhealthyAfter = TimeSpan.FromSeconds(1) },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void A_bad_option_throws_at_registration_naming_it_and_registers_nothing(string option, Action<OutboxDispatcherHostingOptions> configure)
    {
        var services = new ServiceCollection();
        var polystore = services.AddPolystore(TestServers.ConfigDirectory);
        var registered = services.Count;
        var e = Assert.ThrowsAny<ArgumentException>(() => polystore.AddOutboxDispatcher<UserProfileProjection>(configure));
        Assert.Equal(option, e.ParamName);
        Assert.StartsWith(option, e.Message, StringComparison.Ordinal);
        Assert.Equal(registered, services.Count);
    }
}
