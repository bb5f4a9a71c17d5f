using System.Text.Json.Serialization;

namespace Polystore.Samples.Users;

/// <summary>The read model of a user (the <c>user_profiles</c> document), also the payload of its events.</summary>
/// <param name="Id">The user id.</param>
/// <param name="Email">E-mail address.</param>
/// <param name="Name">Display name.</param>
/// <param name="Region">Region.</param>
/// <param name="Version">The user's version in PostgreSQL when this was written.</param>
/// <param name="CreatedAt">When the user was created.</param>
public sealed record UserProfile(
    [property: JsonPropertyName("id")] long Id,
    [property: JsonPropertyName("email")] string Email,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("region")] string Region,
    [property: JsonPropertyName("version")] long Version,
    [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt);
