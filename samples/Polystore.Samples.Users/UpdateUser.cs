namespace Polystore.Samples.Users;

/// <summary>Changes a user's name and/or region.</summary>
/// <param name="Id">The user.</param>
/// <param name="Name">The new name, or null to keep it.</param>
/// <param name="Region">The new region, or null to keep it.</param>
public sealed record UpdateUser(long Id, string? Name, string? Region);
