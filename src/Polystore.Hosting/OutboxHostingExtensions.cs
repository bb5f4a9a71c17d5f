using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore.Integration.Outbox;

namespace Polystore.Hosting;

/// <summary>Runs outbox dispatchers inside an application host, with a health check on their lag.</summary>
public static class OutboxHostingExtensions
{
    /// <summary>
    /// Runs the dispatcher <paramref name="create"/> builds as a hosted service for the application's
    /// lifetime (several instances of the application may run it: one leads), and adds a health check
    /// named <c>outbox:{schema}:{subscriberName}</c> that turns Degraded when its backlog is older than
    /// <paramref name="degradedAfter"/> (default 30 s) and Unhealthy past <paramref name="unhealthyAfter"/> (default 5 min).
    /// </summary>
    public static IServiceCollection AddOutboxDispatcher(this IServiceCollection services, OutboxStore store, string subscriberName,
        Func<IServiceProvider, IOutboxSubscriber> create, OutboxDispatcherOptions? options = null, TimeSpan? degradedAfter = null, TimeSpan? unhealthyAfter = null)
    {
        services.AddSingleton<IHostedService>(sp =>
        {
            var subscriber = create(sp);
            if (subscriber.Name != subscriberName)
                throw new InvalidOperationException($"the subscriber is named '{subscriber.Name}', not '{subscriberName}' as registered");
            return new OutboxDispatcherService(new OutboxDispatcher(sp.GetRequiredService<NpgsqlDataSource>(), store, subscriber, options,
                sp.GetService<ILoggerFactory>()));
        });
        services.AddHealthChecks().Add(new HealthCheckRegistration($"outbox:{store.Schema}:{subscriberName}",
            sp => new OutboxHealthCheck(new OutboxMonitor(sp.GetRequiredService<NpgsqlDataSource>(), store), subscriberName,
                degradedAfter ?? TimeSpan.FromSeconds(30), unhealthyAfter ?? TimeSpan.FromMinutes(5)),
            HealthStatus.Unhealthy, ["polystore", "outbox"]));
        return services;
    }
}

/// <summary>Runs one dispatcher until the host stops.</summary>
internal sealed class OutboxDispatcherService(OutboxDispatcher dispatcher) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => dispatcher.RunAsync(stoppingToken);
}
