using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Polystore.Postgres.Querying;

/// <summary>
/// Signs keyset cursors with HMAC-SHA256 so a client cannot change or forge them. Give every instance
/// of a service the same key (at least 32 bytes) so cursors survive restarts and load balancing;
/// <see cref="PerProcess"/> uses a random key that lives as long as the process.
/// </summary>
public sealed class CursorSigner
{
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
        var body = JsonSerializer.SerializeToUtf8Bytes(payload, CursorJson.Default.CursorPayload);
        return Base64Url(body) + "." + Base64Url(HMACSHA256.HashData(_key, body));
    }

    internal CursorPayload Verify(string cursor)
    {
        var dot = cursor.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || cursor.Length > 4096) throw new InvalidCursorException("the page cursor is malformed (it must be passed back exactly as it was returned).");
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
        if (!CryptographicOperations.FixedTimeEquals(mac, HMACSHA256.HashData(_key, body)))
            throw new InvalidCursorException("the page cursor's signature does not match: it was changed, forged, or signed with another key (for example before a restart).");
        try
        {
            return JsonSerializer.Deserialize(body, CursorJson.Default.CursorPayload) ?? throw new InvalidCursorException("the page cursor is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidCursorException("the page cursor is malformed.", e);
        }
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] FromBase64Url(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s.PadRight(s.Length + (4 - s.Length % 4) % 4, '='));
    }

    internal static string Fingerprint(string description) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(description)), 0, 8);
}
