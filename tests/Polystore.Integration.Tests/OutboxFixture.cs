using Npgsql;
using Polystore.Integration.Outbox;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Integration.Tests;

/// <summary>A private schema with the outbox tables, for one test class.</summary>
public sealed class OutboxSchema : IAsyncLifetime
{
    public OutboxSchema()
    {
        Sources = PostgresDataSources.Create(TestServers.Postgres);
        Store = new OutboxStore(TestServers.UniqueName("ob"));
    }

    public PostgresDataSources Sources { get; }
    public NpgsqlDataSource DataSource => Sources.Primary;
    public OutboxStore Store { get; }

    public async ValueTask InitializeAsync() => await Store.EnsureCreatedAsync(DataSource);

    public async ValueTask DisposeAsync()
    {
        await using (var connection = await DataSource.OpenConnectionAsync())
        await using (var drop = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{Store.Schema}\" CASCADE", connection))
            await drop.ExecuteNonQueryAsync();
        await Sources.DisposeAsync();
    }

    public async Task ExecAsync(string sql)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(sql.Replace("$schema", $"\"{Store.Schema}\"", StringComparison.Ordinal), connection);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<long> ScalarAsync(string sql)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand(sql.Replace("$schema", $"\"{Store.Schema}\"", StringComparison.Ordinal), connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task AppendAsync(int count, string type = "test.event")
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await Store.AppendAsync(transaction, Enumerable.Range(0, count).Select(i => new OutboxMessage("test", $"a{i}", 1, type, $$"""{"n":{{i}}}""")).ToList());
        await transaction.CommitAsync();
    }
}

internal static class Delivery
{
    /// <summary>
    /// Delivers until <paramref name="done"/> holds. Events wait behind the cluster's oldest open
    /// transaction (the xmin horizon), and other test classes hold short transactions in parallel, so
    /// delivery is "soon", not "at once".
    /// </summary>
    public static Task UntilAsync(OutboxDispatcher dispatcher, Func<Task<bool>> done, CancellationToken cancellationToken) =>
        Eventually.UntilAsync(async () =>
        {
            await dispatcher.ProcessAvailableAsync(cancellationToken);
            return await done();
        }, "the events were delivered", cancellationToken);
}

/// <summary>Records what a dispatcher delivered, in the delivery transaction (so the record is exactly what was checkpointed).</summary>
public sealed class RecordingSubscriber(OutboxSchema schema, string name = "recorder") : IOutboxSubscriber
{
    public string Name { get; } = name;
    public Func<OutboxEvent, bool>? FailWhen { get; init; }

    public async Task HandleAsync(OutboxEvent outboxEvent, OutboxContext context, CancellationToken cancellationToken)
    {
        if (FailWhen?.Invoke(outboxEvent) == true) throw new InvalidOperationException($"refusing event {outboxEvent.Id}");
        await using var command = new NpgsqlCommand($"INSERT INTO \"{schema.Store.Schema}\".deliveries (subscriber, event_id) VALUES ($1, $2)", context.Connection, context.Transaction);
        command.Parameters.AddWithValue(Name);
        command.Parameters.AddWithValue(outboxEvent.Id);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public static Task CreateTableAsync(OutboxSchema schema) =>
        schema.ExecAsync("CREATE TABLE IF NOT EXISTS $schema.deliveries (seq bigint GENERATED ALWAYS AS IDENTITY, subscriber text, event_id bigint)");
}
