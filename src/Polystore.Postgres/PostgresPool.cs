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
        catch (Exception e) when (e is not PostgresPoolExhaustedException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested)
                                   && IsPoolExhausted(e))
        {
            throw Wrap(dataSource, e);
        }
    }

    // Npgsql reports a full pool as an NpgsqlException caused by a TimeoutException whose message says "exhausted" (a
    // server that does not answer in time is also a TimeoutException, so both are checked). A multi-host data source
    // wraps it: "Unable to connect to a suitable host", caused by an AggregateException of each host's failure.
    private static bool IsPoolExhausted(Exception e) => e switch
    {
        PostgresPoolExhaustedException => true,
        NpgsqlException when e.InnerException is TimeoutException && e.Message.Contains("exhausted", StringComparison.OrdinalIgnoreCase) => true,
        AggregateException a => a.InnerExceptions.Any(IsPoolExhausted),
        _ => e.InnerException is { } inner && IsPoolExhausted(inner),
    };

    private static PostgresPoolExhaustedException Wrap(NpgsqlDataSource dataSource, Exception e)
    {
        var builder = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        return new PostgresPoolExhaustedException(builder.MaxPoolSize, builder.Timeout, e);
    }
}
