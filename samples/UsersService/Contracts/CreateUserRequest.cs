namespace Polystore.Samples.UsersService;

/// <summary>The body of <c>POST /users</c> and one row of <c>POST /users:bulk</c> (for the OpenAPI document).</summary>
internal sealed record CreateUserRequest(string Email, string Name, string Region);
