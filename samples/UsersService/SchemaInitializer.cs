using Polystore.Samples.Users;

namespace Polystore.Samples.UsersService;

/// <summary>Creates the schema's tables (users, outbox, read model, orders) at start-up, before the outbox dispatcher starts.</summary>
internal sealed class SchemaInitializer(UsersApp users, OrderStore orders) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await users.EnsureCreatedAsync(cancellationToken);
        await orders.EnsureCreatedAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
