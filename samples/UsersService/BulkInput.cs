using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Polystore.Samples.Users;

namespace Polystore.Samples.UsersService;

/// <summary>
/// The rows of a bulk request, read as they arrive: a JSON array element by element, or NDJSON line by line. Only the
/// row being read is in memory; the first bad row throws <see cref="BulkInputException"/> naming it and its field.
/// </summary>
internal static class BulkInput
{
    public const string Json = "application/json";
    public const string Ndjson = "application/x-ndjson";

    /// <summary>The longest NDJSON line accepted (a row is three short strings).</summary>
    public const int MaxLineBytes = 64 * 1024;

    private static readonly JsonSerializerOptions ArrayOptions = new() { MaxDepth = 16 };
    private static readonly JsonDocumentOptions LineOptions = new() { MaxDepth = 16 };

    /// <summary>The elements of a top-level JSON array; the field of an error is <c>[index].name</c>.</summary>
    public static async IAsyncEnumerable<CreateUser> ReadArrayAsync(Stream body, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var elements = JsonSerializer.DeserializeAsyncEnumerable<JsonElement>(body, ArrayOptions, cancellationToken).GetAsyncEnumerator(cancellationToken);
        try
        {
            for (long index = 0; ; index++)
            {
                bool more;
                try
                {
                    more = await elements.MoveNextAsync();
                }
                catch (JsonException e)
                {
                    throw Invalid(index == 0 ? RequestJson.BodyField : $"[{index}]", RequestJson.Describe(e, withPath: false) + (index == 0 ? " A JSON array of users is expected." : ""));
                }
                if (!more) yield break;
                yield return Row(elements.Current, $"[{index}]");
            }
        }
        finally
        {
            await elements.DisposeAsync();
        }
    }

    /// <summary>One JSON object per line (blank lines skipped); the field of an error is <c>line N.name</c>.</summary>
    public static async IAsyncEnumerable<CreateUser> ReadLinesAsync(PipeReader body, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long line = 0;
        ReadResult result = default;
        var reading = false;
        try
        {
            while (true)
            {
                result = await body.ReadAsync(cancellationToken);
                reading = true;
                var buffer = result.Buffer;
                while (buffer.PositionOf((byte)'\n') is { } end)
                {
                    line++;
                    var row = Line(buffer.Slice(0, end), line);
                    buffer = buffer.Slice(buffer.GetPosition(1, end));
                    if (row is not null) yield return row;
                }
                if (buffer.Length > MaxLineBytes) throw Invalid($"line {line + 1}", $"is longer than {MaxLineBytes:N0} bytes.");
                if (result.IsCompleted)
                {
                    // The last line may lack its newline.
                    var last = buffer.IsEmpty ? null : Line(buffer, line + 1);
                    reading = false;
                    body.AdvanceTo(result.Buffer.End);
                    if (last is not null) yield return last;
                    yield break;
                }
                reading = false;
                body.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        finally
        {
            // A bad row, a failed write or a cancelled request leaves a read open: end it, or the server cannot
            // drain the rest of the body and reuse the connection.
            if (reading) body.AdvanceTo(result.Buffer.End);
        }
    }

    private static CreateUser? Line(ReadOnlySequence<byte> bytes, long line)
    {
        if (IsBlank(bytes)) return null;
        if (bytes.Length > MaxLineBytes) throw Invalid($"line {line}", $"is longer than {MaxLineBytes:N0} bytes.");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes, LineOptions);
        }
        catch (JsonException e)
        {
            throw Invalid($"line {line}", RequestJson.Describe(e));
        }
        using (document) return Row(document.RootElement, $"line {line}");
    }

    private static CreateUser Row(JsonElement element, string at)
    {
        var errors = new InputErrors();
        return UserInput.ReadCreate(element, at, errors) ?? throw new BulkInputException(errors);
    }

    private static bool IsBlank(ReadOnlySequence<byte> bytes)
    {
        foreach (var segment in bytes)
            foreach (var b in segment.Span)
                if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r')) return false;
        return true;
    }

    private static BulkInputException Invalid(string field, string message)
    {
        var errors = new InputErrors();
        errors.Add(field, message);
        return new BulkInputException(errors);
    }
}
