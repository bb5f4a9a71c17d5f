using System.Globalization;

namespace Polystore.Samples.UsersService;

/// <summary>The service's RFC 7807 problem responses.</summary>
internal static class Problems
{
    public static IResult Validation(IDictionary<string, string[]> errors) =>
        TypedResults.ValidationProblem(errors, title: "The request has invalid fields.");

    public static IResult Validation(string field, string message) => Validation(InputErrors.One(field, message));

    public static IResult NotFound(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found.");

    public static IResult Conflict(string detail, string? field = null) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "Conflict.",
            extensions: field is null ? null : new Dictionary<string, object?> { ["field"] = field });

    /// <summary>422: the request is well formed but cannot be applied to the current state (<paramref name="field"/> is why).</summary>
    public static IResult Unprocessable(string detail, string field) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status422UnprocessableEntity, title: "The request cannot be applied.",
            extensions: new Dictionary<string, object?> { ["field"] = field });

    public static IResult PreconditionFailed(string detail, long currentVersion) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status412PreconditionFailed, title: "The resource has changed.",
            extensions: new Dictionary<string, object?> { ["currentVersion"] = currentVersion });

    public static IResult PreconditionRequired(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status428PreconditionRequired, title: "If-Match is required.",
            type: "https://www.rfc-editor.org/rfc/rfc6585#section-3", // ASP.NET Core maps no type for 428
            extensions: new Dictionary<string, object?> { ["field"] = "If-Match" });

    public static IResult UnsupportedMediaType(string? given, string[] expected) =>
        TypedResults.Problem($"send the body as {string.Join(" or ", expected)} (Content-Type was {(string.IsNullOrEmpty(given) ? "missing" : $"'{given}'")}).",
            statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type.",
            extensions: new Dictionary<string, object?> { ["field"] = "Content-Type" });

    /// <summary>
    /// Gives the 415 that routing answers itself (a Content-Type no endpoint accepts, before any handler runs) the shape
    /// of the handlers' own: a detail and the field, not only the generic title.
    /// </summary>
    public static void CompleteUnsupportedMediaType(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        if (problem.Status != StatusCodes.Status415UnsupportedMediaType || problem.Detail is not null) return;
        var given = context.HttpContext.Request.ContentType;
        problem.Title = "Unsupported media type.";
        problem.Detail = $"send the body in a media type this endpoint accepts (see /openapi/v1.json); Content-Type was {(string.IsNullOrEmpty(given) ? "missing" : $"'{given}'")}.";
        problem.Extensions["field"] = "Content-Type";
    }

    /// <summary>503 with Retry-After: a store or lock is not available now; the same request may succeed later.</summary>
    public static IResult Unavailable(HttpContext context, string detail, int retryAfterSeconds = 1)
    {
        context.Response.Headers.RetryAfter = retryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return TypedResults.Problem(detail, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Service unavailable.");
    }
}
