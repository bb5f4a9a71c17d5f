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

    // A host with the user-profile projection's dispatcher on its own schema, the tables created.
    private static async Task<(ServiceProvider Provider, UserCommandHandler Commands, PostgresJsonbReadModelStore<UserProfile> Store)> HostAsync(
        string schema, Action<OutboxDispatcherHostingOptions> configure, TimeSpan? healthCheckTimeout = null)
    {
        var services = new ServiceCollection().AddLogging();
        var polystore = services.AddPolystore(TestServers.ConfigDirectory, healthCheckTimeout);
        services.AddSingleton(sp => new PostgresJsonbReadModelStore<UserProfile>(sp.GetRequiredService<NpgsqlDataSource>(), schema, "user_profiles"));
        services.AddSingleton(sp => new UserProfileProjection(sp.GetRequiredService<PostgresJsonbReadModelStore<UserProfile>>()));
        polystore.AddOutboxDispatcher<UserProfileProjection>(o =>
        {
            o.Schema = schema;
            o.PollInterval = TimeSpan.FromMilliseconds(50);
            configure(o);
        });
        var provider = services.BuildServiceProvider();
        var commands = new UserCommandHandler(provider.GetRequiredService<NpgsqlDataSource>(), new OutboxStore(schema));
        await commands.EnsureCreatedAsync(Ct);
        var store = provider.GetRequiredService<PostgresJsonbReadModelStore<UserProfile>>();
        await store.EnsureCreatedAsync(Ct);
        return (provider, commands, store);
    }

    [Fact]
    public async Task The_hosted_dispatcher_projects_commands_and_its_health_check_reports_the_backlog()
    {
        var schema = TestServers.UniqueName("host");
        var (provider, commands, store) = await HostAsync(schema, _ => { });
        await using var disposesProvider = provider;
        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();
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
        var (provider, commands, _) = await HostAsync(schema, o =>
        {
            o.RetentionMaxAge = TimeSpan.Zero; // every delivered event
            o.RetentionInterval = TimeSpan.FromMilliseconds(100);
        });
        await using var disposesProvider = provider;
        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();
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

    [Fact]
    public async Task The_outbox_health_check_is_bounded_by_the_health_check_timeout()
    {
        var schema = TestServers.UniqueName("hostslow");
        var (provider, _, _) = await HostAsync(schema, _ => { }, healthCheckTimeout: TimeSpan.FromMilliseconds(500));
        await using var disposesProvider = provider;
        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();
        try
        {
            // Another session holds the outbox table: the check's status query waits for the lock (up to the
            // driver's 30 s command timeout) unless the health service cancels it at the configured timeout.
            await using var holder = await dataSource.OpenConnectionAsync(Ct);
            await using var transaction = await holder.BeginTransactionAsync(Ct);
            await using (var lockTable = new NpgsqlCommand($"LOCK TABLE \"{schema}\".outbox IN ACCESS EXCLUSIVE MODE", holder, transaction))
                await lockTable.ExecuteNonQueryAsync(Ct);

            var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Tags.Contains("outbox"), Ct);

            var entry = Assert.Single(report.Entries).Value;
            Assert.Equal(HealthStatus.Unhealthy, entry.Status);
            Assert.IsAssignableFrom<OperationCanceledException>(entry.Exception);
            await transaction.RollbackAsync(Ct);
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
