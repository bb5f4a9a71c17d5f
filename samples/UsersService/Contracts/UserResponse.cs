using Polystore.Samples.Users;

namespace Polystore.Samples.UsersService;

/// <summary>A user as the API shows it; <see cref="Version"/> is also its ETag.</summary>
internal sealed record UserResponse(long Id, string Email, string Name, string Region, long Version, DateTimeOffset CreatedAt)
{
    public static UserResponse From(UserProfile profile) => new(profile.Id, profile.Email, profile.Name, profile.Region, profile.Version, profile.CreatedAt);
}
