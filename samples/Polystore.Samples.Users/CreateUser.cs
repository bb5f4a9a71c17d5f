namespace Polystore.Samples.Users;

/// <summary>Creates a user.</summary>
/// <param name="Email">Unique e-mail address.</param>
/// <param name="Name">Display name.</param>
/// <param name="Region">Region, for the analytics query.</param>
public sealed record CreateUser(string Email, string Name, string Region);
