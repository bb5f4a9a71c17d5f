using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Polystore.Postgres.Querying;

/// <summary>
/// Signs keyset cursors with HMAC-SHA256 so a client cannot change or forge them. Give every instance
/// of a service the same key (at least 32 bytes) so cursors survive restarts and load balancing;
/// <see cref="PerProcess"/> uses a random key that lives as long as the process.
/// </summary>
public sealed class CursorSigner
{
    // The JSON travels base64url-encoded and is never embedded in HTML, so only JSON's own escapes are needed:
    // non-ASCII text stays UTF-8 (2-4 bytes a character) instead of \uXXXX (6 bytes).
    private static readonly CursorJson Json = new(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    // base64url of an HMAC-SHA256 (32 bytes), unpadded.
    private const int MacLength = 43;

    // JSON writes one byte of UTF-8 text as at most 6 bytes (a control character as \u00XX; any escaped character
    // takes 6 bytes per 1-3 bytes of UTF-8, or 12 per 4).
    private const int JsonBytesPerTextByte = 6;

    private readonly byte[] _key;

    /// <summary>Signs with <paramref name="key"/> (at least 32 bytes; copied).</summary>
    public CursorSigner(ReadOnlySpan<byte> key)
    {
        if (key.Length < 32) throw new ArgumentException("the cursor signing key must be at least 32 bytes.", nameof(key));
        _key = key.ToArray();
    }

    /// <summary>A random key made once per process: cursors stop working after a restart.</summary>
    public static CursorSigner PerProcess { get; } = new(RandomNumberGenerator.GetBytes(32));

    internal string Sign(CursorPayload payload)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(payload, Json.CursorPayload);
        return Base64Url(body) + "." + Base64Url(HMACSHA256.HashData(_key, body));
    }

    /// <summary>
    /// The longest cursor <see cref="Sign"/> can make for a query with this fingerprint and <paramref name="keyCount"/> keys
    /// whose texts take at most <paramref name="maxKeyBytes"/> bytes of UTF-8 together: the worst case of the JSON escapes.
    /// </summary>
    internal static int MaxCursorLength(string fingerprint, int keyCount, int maxKeyBytes)
    {
        // The payload around the key texts, with the longer spelling of the flag.
        var frame = JsonSerializer.SerializeToUtf8Bytes(new CursorPayload(1, fingerprint, false, Enumerable.Repeat("", keyCount).ToArray()), Json.CursorPayload).Length;
        var body = frame + (long)JsonBytesPerTextByte * maxKeyBytes;
        return checked((int)((body * 4 + 2) / 3) + 1 + MacLength);
    }

    /// <summary>Checks and decodes a cursor; one longer than <paramref name="maxLength"/> is refused before any decoding.</summary>
    internal CursorPayload Verify(string cursor, int maxLength)
    {
        if (cursor.Length > maxLength)
            throw new InvalidCursorException($"the page cursor is longer ({cursor.Length:N0} characters) than any this query issues ({maxLength:N0}); it must be passed back exactly as it was returned.");
        var dot = cursor.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0) throw new InvalidCursorException("the page cursor is malformed (it must be passed back exactly as it was returned).");
        byte[] body, mac;
        try
        {
            body = FromBase64Url(cursor[..dot]);
            mac = FromBase64Url(cursor[(dot + 1)..]);
        }
        catch (FormatException e)
        {
            throw new InvalidCursorException("the page cursor is malformed (it must be passed back exactly as it was returned).", e);
        }
        // Only the text this signer writes passes: the last base64 character of each part carries bits no byte uses,
        // so a cursor changed only there would decode to the same bytes (and the same signature) and be accepted.
        if (!CryptographicOperations.FixedTimeEquals(mac, HMACSHA256.HashData(_key, body))
            || !IsBase64Url(body, cursor.AsSpan(0, dot)) || !IsBase64Url(mac, cursor.AsSpan(dot + 1)))
            throw new InvalidCursorException("the page cursor's signature does not match: it was changed, forged, or signed with another key (for example before a restart).");
        try
        {
            return JsonSerializer.Deserialize(body, Json.CursorPayload) ?? throw new InvalidCursorException("the page cursor is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidCursorException("the page cursor is malformed.", e);
        }
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool IsBase64Url(byte[] bytes, ReadOnlySpan<char> text) => text.SequenceEqual(Base64Url(bytes));

    private static byte[] FromBase64Url(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s.PadRight(s.Length + (4 - s.Length % 4) % 4, '='));
    }

    internal static string Fingerprint(string description) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(description)), 0, 8);
}
