using System.Text.Json;
using Microsoft.Net.Http.Headers;

namespace Polystore.Samples.UsersService;

/// <summary>Reads a small JSON request body, answering a wrong media type with 415 and malformed JSON with 400.</summary>
internal static class RequestJson
{
    /// <summary>The error key of problems with the body as a whole.</summary>
    public const string BodyField = "body";

    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 16 };

    /// <summary>The parsed body, or the problem response to send instead.</summary>
    public static async Task<(JsonElement Body, IResult? Problem)> ReadAsync(HttpRequest request, CancellationToken cancellationToken, params string[] mediaTypes)
    {
        if (!HasMediaType(request, mediaTypes))
            return (default, Problems.UnsupportedMediaType(request.ContentType, mediaTypes));
        try
        {
            using var document = await JsonDocument.ParseAsync(request.Body, Options, cancellationToken);
            return (document.RootElement.Clone(), null);
        }
        catch (JsonException e)
        {
            return (default, Problems.Validation(InputErrors.One(BodyField, Describe(e))));
        }
    }

    /// <summary>Whether the request's Content-Type is one of <paramref name="mediaTypes"/> (parameters such as charset ignored).</summary>
    public static bool HasMediaType(HttpRequest request, params string[] mediaTypes) =>
        MediaTypeHeaderValue.TryParse(request.ContentType, out var type)
        && mediaTypes.Any(m => type.MediaType.Equals(m, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// A JSON error without the parser's exception text beyond its position. <paramref name="withPath"/>: false where
    /// the parser's path is not the document's (the elements of a streamed array restart it at each one).
    /// </summary>
    public static string Describe(JsonException e, bool withPath = true) =>
        e.LineNumber is { } line
            ? $"is not valid JSON (line {line + 1}, byte {e.BytePositionInLine + 1}{(!withPath || string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $", at {e.Path}")})."
            : "is not valid JSON.";
}
