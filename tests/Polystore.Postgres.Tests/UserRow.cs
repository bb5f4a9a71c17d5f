namespace Polystore.Postgres.Tests;

public sealed record UserRow(string Email, string Name, int Score, string? Region = null);
