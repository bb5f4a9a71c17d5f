namespace Polystore.Samples.UsersService;

/// <summary>The body of <c>PATCH /users/{id}</c>: the fields to change (for the OpenAPI document).</summary>
internal sealed record PatchUserRequest(string? Name, string? Region);
