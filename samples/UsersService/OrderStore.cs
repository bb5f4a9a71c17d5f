using Npgsql;

namespace Polystore.Samples.UsersService;

/// <summary>
/// Orders and each user's order totals, beside the users table. Writes are made under the user's Redis lock and carry
/// its fencing token: the totals row remembers the highest token that wrote it, and a write is applied only when its
/// token is higher and nobody wrote since it read (compare-and-set on the token). A holder whose lease ran out (a long
/// pause, a partition) therefore cannot write after the next holder, nor overwrite what that holder wrote.
/// </summary>
internal sealed class OrderStore(NpgsqlDataSource dataSource, string schema)
{
    private readonly string _users = $"\"{schema}\".users";
    private readonly string _totals = $"\"{schema}\".user_orders";
    private readonly string _orders = $"\"{schema}\".orders";

    /// <summary>The totals table, for the ranking.</summary>
    public string TotalsTable => $"{schema}.user_orders";

    public async Task EnsureCreatedAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"""
            CREATE TABLE IF NOT EXISTS {_totals} (
                user_id bigint PRIMARY KEY REFERENCES {_users} (id),
                order_count bigint NOT NULL DEFAULT 0,
                order_total numeric(16, 2) NOT NULL DEFAULT 0,
                fence bigint NOT NULL DEFAULT 0);
            CREATE INDEX IF NOT EXISTS user_orders_total ON {_totals} (order_total DESC);
            CREATE TABLE IF NOT EXISTS {_orders} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                user_id bigint NOT NULL REFERENCES {_users} (id),
                order_no bigint NOT NULL,
                amount numeric(16, 2) NOT NULL,
                fence bigint NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (user_id, order_no));
            """, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The largest order total of a user that <c>numeric(16, 2)</c> holds.</summary>
    public const decimal MaxTotal = 99_999_999_999_999.99m;

    /// <summary>
    /// Records an order with the lock's <paramref name="fencingToken"/>: reads the user's totals, adds the order, and
    /// writes them back only if the token is newer than the last writer's and nobody wrote since the read.
    /// </summary>
    public async Task<OrderOutcome> PlaceAsync(long userId, decimal amount, long fencingToken, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // The totals row is made on a user's first order; a missing user fails the foreign key.
        await using (var ensure = new NpgsqlCommand($"INSERT INTO {_totals} (user_id) SELECT id FROM {_users} WHERE id = $1 ON CONFLICT DO NOTHING", connection, transaction))
        {
            ensure.Parameters.Add(new() { Value = userId });
            await ensure.ExecuteNonQueryAsync(cancellationToken);
        }
        long count, fence;
        decimal total;
        await using (var read = new NpgsqlCommand($"SELECT order_count, order_total, fence FROM {_totals} WHERE user_id = $1", connection, transaction))
        {
            read.Parameters.Add(new() { Value = userId });
            await using var reader = await read.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken)) return OrderOutcome.UserNotFound;
            (count, total, fence) = (reader.GetInt64(0), reader.GetDecimal(1), reader.GetInt64(2));
        }
        if (fencingToken <= fence) return OrderOutcome.Stale(fence);

        // The read-modify-write the lock makes safe; the token guards it when the lock was lost.
        var (newCount, newTotal) = (count + 1, total + amount);
        // Refused before the write: past the column's precision PostgreSQL would fail the UPDATE (a 500).
        if (newTotal > MaxTotal) return OrderOutcome.TotalTooLarge(total);
        await using (var write = new NpgsqlCommand(
            $"UPDATE {_totals} SET order_count = $2, order_total = $3, fence = $4 WHERE user_id = $1 AND fence = $5 AND fence < $4", connection, transaction))
        {
            write.Parameters.Add(new() { Value = userId });
            write.Parameters.Add(new() { Value = newCount });
            write.Parameters.Add(new() { Value = newTotal });
            write.Parameters.Add(new() { Value = fencingToken });
            write.Parameters.Add(new() { Value = fence });
            if (await write.ExecuteNonQueryAsync(cancellationToken) != 1) return OrderOutcome.Stale(null);
        }
        long orderId;
        await using (var insert = new NpgsqlCommand($"INSERT INTO {_orders} (user_id, order_no, amount, fence) VALUES ($1, $2, $3, $4) RETURNING id", connection, transaction))
        {
            insert.Parameters.Add(new() { Value = userId });
            insert.Parameters.Add(new() { Value = newCount });
            insert.Parameters.Add(new() { Value = amount });
            insert.Parameters.Add(new() { Value = fencingToken });
            orderId = (long)(await insert.ExecuteScalarAsync(cancellationToken))!;
        }
        await transaction.CommitAsync(cancellationToken);
        return OrderOutcome.Placed(new OrderResponse(orderId, userId, newCount, amount, newCount, newTotal));
    }

    /// <summary>A user's order count and total; null when the user does not exist.</summary>
    public async Task<OrderTotalsResponse?> GetTotalsAsync(long userId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"SELECT u.id, coalesce(t.order_count, 0), coalesce(t.order_total, 0) FROM {_users} u LEFT JOIN {_totals} t ON t.user_id = u.id WHERE u.id = $1", connection);
        command.Parameters.Add(new() { Value = userId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? new OrderTotalsResponse(reader.GetInt64(0), reader.GetInt64(1), reader.GetDecimal(2)) : null;
    }
}
