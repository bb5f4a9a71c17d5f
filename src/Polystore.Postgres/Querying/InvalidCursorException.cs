namespace Polystore.Postgres.Querying;

/// <summary>
/// A page cursor was changed, forged, signed with another key, or belongs to a different query.
/// Raised before any SQL runs; show the caller a 400, not a 500.
/// </summary>
public sealed class InvalidCursorException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InvalidCursorException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public InvalidCursorException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates the exception.</summary>
    public InvalidCursorException() { }
}
