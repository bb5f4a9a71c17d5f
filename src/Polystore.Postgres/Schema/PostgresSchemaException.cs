namespace Polystore.Postgres.Schema;

/// <summary>
/// A table, column, type or key named by the caller does not match the database catalog. Raised
/// before any row is read or written, so nothing has changed when it is thrown.
/// </summary>
public sealed class PostgresSchemaException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PostgresSchemaException(string message) : base(message) { }

    /// <summary>Creates the exception with an inner cause.</summary>
    public PostgresSchemaException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception.</summary>
    public PostgresSchemaException() { }
}
