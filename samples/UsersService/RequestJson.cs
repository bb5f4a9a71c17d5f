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
        if (NotUtf8(request) is { } charset) return (default, charset);
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
    /// The 415 for a body declared in a charset other than UTF-8 (RFC 8259 8.1: JSON exchanged between systems is
    /// UTF-8), which read as UTF-8 would fail on bytes that say nothing of the real mistake; null when it is UTF-8 or not said.
    /// </summary>
    public static IResult? NotUtf8(HttpRequest request)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var type) || type.Charset.Length == 0) return null;
        var charset = HeaderUtilities.RemoveQuotes(type.Charset).ToString();
        return charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase)
            ? null
            : Problems.UnsupportedMediaType(request.ContentType, [$"{type.MediaType} in UTF-8 (charset '{charset}' is not accepted)"]);
    }

    /// <summary>
    /// A JSON error without the parser's exception text beyond its position. <paramref name="withPath"/>: false where
    /// the parser's path is not the document's (the elements of a streamed array restart it at each one).
    /// </summary>
    public static string Describe(JsonException e, bool withPath = true) =>
        e.LineNumber is { } line
            ? $"is not valid JSON (line {line + 1}, byte {e.BytePositionInLine + 1}{(!withPath || string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $", at {e.Path}")})."
            : "is not valid JSON.";
}
