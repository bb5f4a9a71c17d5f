using Npgsql;

namespace Polystore.Integration.Outbox;

/// <summary>What the outbox's background loops treat as PostgreSQL being unreachable for now: they log it and go on.</summary>
internal static class OutboxOutage
{
    // InvalidOperationException: Npgsql's answer to a connection that broke under a command (not open / in a bad state).
    public static bool Is(Exception e) => e is NpgsqlException or IOException or TimeoutException or InvalidOperationException;
}
