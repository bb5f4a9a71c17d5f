using System.Text.Json.Serialization;

namespace Polystore.Samples.UsersService;

/// <summary>The body of <c>PATCH /users/{id}</c>: the fields to change, at least one (for the OpenAPI document).</summary>
internal sealed record PatchUserRequest
{
    /// <summary>The new name (optional; not null).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Name { get; init; }

    /// <summary>The new region (optional; not null).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Region { get; init; }
}
