using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polystore;
using Polystore.Integration.Outbox;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Runs outbox dispatchers inside an application host, with a health check on their lag.</summary>
public static class OutboxPolystoreBuilderExtensions
{
    /// <summary>
    /// Runs a dispatcher of the outbox in <see cref="OutboxDispatcherHostingOptions.Schema"/> to the subscriber
    /// <typeparamref name="TSubscriber"/> as a hosted service for the application's lifetime (several instances of the
    /// application may run it: one leads), and adds a health check named <c>outbox:{schema}:{subscriber name}</c>,
    /// tagged "polystore" and "outbox", that turns Degraded past <see cref="OutboxDispatcherHostingOptions.DegradedAfter"/>
    /// and Unhealthy past <see cref="OutboxDispatcherHostingOptions.UnhealthyAfter"/>, and Unhealthy when it takes longer
    /// than <see cref="PolystoreBuilder.HealthCheckTimeout"/>. With
    /// <see cref="OutboxDispatcherHostingOptions.RetentionMaxAge"/> set, the host also runs <see cref="OutboxRetention"/> on its schedule.
    /// </summary>
    /// <remarks>
    /// The subscriber is one singleton: registered by the application beforehand (for one that needs arguments the
    /// container cannot supply), or else built by the container from its constructor. The dispatcher uses the
    /// container's <see cref="NpgsqlDataSource"/> (adding PostgreSQL to the builder) and <see cref="ILoggerFactory"/>. The options are validated here, so a
    /// bad value throws at registration, naming the option, and registers nothing.
    /// </remarks>
    public static PolystoreBuilder AddOutboxDispatcher<TSubscriber>(this PolystoreBuilder builder, Action<OutboxDispatcherHostingOptions>? configure = null)
        where TSubscriber : class, IOutboxSubscriber
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new OutboxDispatcherHostingOptions();
        configure?.Invoke(options);
        options.Validate();
        var services = builder.AddPostgres().Services;
        var store = new OutboxStore(options.Schema);
        var dispatcherOptions = options.Dispatcher;
        var (degradedAfter, unhealthyAfter) = (options.DegradedAfter, options.UnhealthyAfter);
        // Bounded like the store checks: a status query stuck behind a lock must not hold /health for the driver's command timeout.
        var healthCheckTimeout = builder.HealthCheckTimeout;

        services.TryAddSingleton<TSubscriber>();
        services.AddSingleton<IHostedService>(sp => new OutboxDispatcherService(new OutboxDispatcher(sp.GetRequiredService<NpgsqlDataSource>(), store,
            sp.GetRequiredService<TSubscriber>(), dispatcherOptions, sp.GetService<ILoggerFactory>())));
        if (options.Retention is { } retention)
        {
            services.AddSingleton<IHostedService>(sp => new OutboxRetentionService(new OutboxRetention(sp.GetRequiredService<NpgsqlDataSource>(), store,
                retention, sp.GetService<TimeProvider>(), sp.GetService<ILoggerFactory>())));
        }
        services.AddHealthChecks();
        // The check is named after the subscriber, known once the container has built it.
        services.AddOptions<HealthCheckServiceOptions>().Configure<TSubscriber>((health, subscriber) =>
            health.Registrations.Add(new HealthCheckRegistration($"outbox:{store.Schema}:{subscriber.Name}",
                sp => new OutboxHealthCheck(new OutboxMonitor(sp.GetRequiredService<NpgsqlDataSource>(), store), subscriber.Name, degradedAfter, unhealthyAfter),
                HealthStatus.Unhealthy, ["polystore", "outbox"], healthCheckTimeout)));
        return builder;
    }
}

/// <summary>Prunes the outbox on its schedule until the host stops.</summary>
internal sealed class OutboxRetentionService(OutboxRetention retention) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => retention.RunAsync(stoppingToken);
}

/// <summary>Runs one dispatcher until the host stops.</summary>
internal sealed class OutboxDispatcherService(OutboxDispatcher dispatcher) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => dispatcher.RunAsync(stoppingToken);
}
