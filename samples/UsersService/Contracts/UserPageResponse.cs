namespace Polystore.Samples.UsersService;

/// <summary>One keyset page of users, in id order; pass <see cref="Next"/> back as <c>after</c> for the following page.</summary>
internal sealed record UserPageResponse(IReadOnlyList<UserResponse> Items, string? Next, string? NextLink);
