using System.Globalization;
using Npgsql;

namespace Polystore.Postgres;

/// <summary>
/// Every pooled connection was busy for the whole wait: the connection pool is exhausted.
/// Names the pool size and wait so the fix (return connections sooner, or raise pool.max_size,
/// pool.max_overflow or pool.pool_timeout in postgresql.yaml) is obvious. Derives from
/// <see cref="NpgsqlException"/> so existing handlers still catch it.
/// </summary>
public sealed class PostgresPoolExhaustedException : NpgsqlException
{
    /// <summary>Creates the exception.</summary>
    public PostgresPoolExhaustedException(int maxPoolSize, int timeoutSeconds, Exception? innerException)
        : base(string.Format(CultureInfo.InvariantCulture,
            "PostgreSQL connection pool exhausted: all {0} connections (pool.max_size + pool.max_overflow) were in use for the whole {1} s wait (pool.pool_timeout). " +
            "Dispose connections as soon as their work is done, or raise pool.max_size / pool.max_overflow / pool.pool_timeout in postgresql.yaml.", maxPoolSize, timeoutSeconds), innerException)
    {
        MaxPoolSize = maxPoolSize;
        TimeoutSeconds = timeoutSeconds;
    }

    /// <summary>Creates the exception.</summary>
    public PostgresPoolExhaustedException() : this(0, 0, null) { }

    /// <summary>Creates the exception.</summary>
    public PostgresPoolExhaustedException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public PostgresPoolExhaustedException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>The most connections the pool opens (Npgsql's Max Pool Size).</summary>
    public int MaxPoolSize { get; }

    /// <summary>Seconds a caller waited for a free connection (Npgsql's Timeout).</summary>
    public int TimeoutSeconds { get; }
}
