using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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

    /// <summary>The longest row accepted, as an NDJSON line or a JSON array element (a row is three short strings).</summary>
    public const int MaxLineBytes = 64 * 1024;

    private static readonly JsonSerializerOptions ArrayOptions = new() { MaxDepth = 16, DefaultBufferSize = 16 * 1024 };

    // The array's parser holds a whole element in memory before it hands it over: past a row's limit and what the parser
    // may have read ahead, the body is not read any further.
    private static readonly int MaxBytesPerElement = MaxLineBytes + (2 * ArrayOptions.DefaultBufferSize);
    private static readonly JsonDocumentOptions LineOptions = new() { MaxDepth = 16 };

    /// <summary>The elements of a top-level JSON array; the field of an error is <c>[index].name</c>.</summary>
    public static async IAsyncEnumerable<CreateUser> ReadArrayAsync(Stream body, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var bounded = new ElementBoundedStream(body, MaxBytesPerElement);
        var elements = JsonSerializer.DeserializeAsyncEnumerable<JsonElement>(bounded, ArrayOptions, cancellationToken).GetAsyncEnumerator(cancellationToken);
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
                catch (ElementTooLongException)
                {
                    throw TooLong($"[{index}]");
                }
                if (!more) yield break;
                bounded.ElementEnded();
                if (JsonMarshal.GetRawUtf8Value(elements.Current).Length > MaxLineBytes) throw TooLong($"[{index}]");
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
                if (buffer.Length > MaxLineBytes) throw TooLong($"line {line + 1}");
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
        if (bytes.Length > MaxLineBytes) throw TooLong($"line {line}");
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

    private static BulkInputException TooLong(string field) => Invalid(field, $"is longer than {MaxLineBytes:N0} bytes.");

    private sealed class ElementTooLongException : Exception;

    /// <summary>
    /// The request body, refusing to be read past <c>limit</c> bytes since the last element the parser handed over
    /// (<see cref="ElementEnded"/>): one huge element cannot make the parser buffer it whole.
    /// </summary>
    private sealed class ElementBoundedStream(Stream inner, int limit) : Stream
    {
        private long _sinceElement;

        public void ElementEnded() => _sinceElement = 0;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            if ((_sinceElement += read) > limit) throw new ElementTooLongException();
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("the body is read asynchronously");

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
