using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Polystore.Samples.UsersService;

/// <summary>
/// Documents a query parameter a handler reads itself (from <c>HttpRequest.Query</c>, so that a repeated or malformed
/// value is answered with the service's own 400 naming the field, not the framework's binding error).
/// </summary>
internal static class OpenApiQuery
{
    public static RouteHandlerBuilder WithQuery(this RouteHandlerBuilder builder, string name, JsonSchemaType type, string description) =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter { Name = name, In = ParameterLocation.Query, Description = description, Schema = new OpenApiSchema { Type = type } });
            return Task.CompletedTask;
        });
}
