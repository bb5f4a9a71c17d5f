using Npgsql;

namespace Polystore.Postgres;

/// <summary>Opens pooled connections, turning Npgsql's pool-exhausted timeout into <see cref="PostgresPoolExhaustedException"/>.</summary>
internal static class PostgresPool
{
    public static async ValueTask<NpgsqlConnection> OpenAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        try
        {
            return await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (NpgsqlException e) when (IsPoolExhausted(e))
        {
            throw Wrap(dataSource, e);
        }
    }

    // Npgsql reports a full pool as an NpgsqlException caused by a TimeoutException whose message
    // says "exhausted"; a server that does not answer in time is also a TimeoutException, so both are checked.
    private static bool IsPoolExhausted(NpgsqlException e) =>
        e is not PostgresPoolExhaustedException && e.InnerException is TimeoutException && e.Message.Contains("exhausted", StringComparison.OrdinalIgnoreCase);

    private static PostgresPoolExhaustedException Wrap(NpgsqlDataSource dataSource, NpgsqlException e)
    {
        var builder = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        return new PostgresPoolExhaustedException(builder.MaxPoolSize, builder.Timeout, e);
    }
}
