using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Hosting.Tests;

/// <summary>The hosted outbox dispatcher logs through the host's logging, not to a null logger.</summary>
public sealed class OutboxHostingLoggingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_hosted_dispatcher_logs_to_the_hosts_providers()
    {
        var schema = TestServers.UniqueName("hostlog");
        var outbox = new OutboxStore(schema);
        var logs = new LogCapture();
        var services = new ServiceCollection().AddLogging(b => b.SetMinimumLevel(LogLevel.Debug).AddProvider(logs));
        var polystore = services.AddPolystore(TestServers.ConfigDirectory).AddPostgres();
        polystore.AddOutboxDispatcher<Quiet>(o =>
        {
            o.Schema = schema;
            o.PollInterval = TimeSpan.FromMilliseconds(50);
        });
        await using var provider = services.BuildServiceProvider();
        var dataSource = provider.GetRequiredService<NpgsqlDataSource>();
        await outbox.EnsureCreatedAsync(dataSource, Ct);
        try
        {
            var hosted = provider.GetServices<IHostedService>().ToList();
            foreach (var service in hosted) await service.StartAsync(Ct);
            for (var i = 0; i < 600 && !logs.Logs.Any(l => l.EventId.Id == 101 && l.Message.Contains("quiet", StringComparison.Ordinal)); i++) await Task.Delay(50, Ct);
            foreach (var service in hosted) await service.StopAsync(Ct);

            var leader = Assert.Single(logs.Logs, l => l.EventId.Id == 101 && l.Message.Contains("quiet", StringComparison.Ordinal));
            Assert.Equal((typeof(OutboxDispatcher).FullName, LogLevel.Information, "OutboxLeader"), (leader.Category, leader.Level, leader.EventId.Name));
            // The registered data sources log to the host's providers too: Npgsql's own lines are there.
            Assert.Contains(logs.Logs, l => l.Category.StartsWith("Npgsql", StringComparison.Ordinal));
            Assert.NotNull(PostgresDataSources.LoggerFactoryOf(dataSource));
        }
        finally
        {
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            await using var drop = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
            await drop.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    internal sealed class Quiet : IOutboxSubscriber
    {
        public string Name => "quiet";

        public Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
