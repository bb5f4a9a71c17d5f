using System.Text.RegularExpressions;

namespace Polystore.Core;

/// <summary>Removes secrets from text that may be printed, logged or put in an exception message.</summary>
public static partial class Redactor
{
    /// <summary>What a hidden secret is shown as.</summary>
    public const string Mask = "***";

    /// <summary>Replaces the password in every <c>scheme://user:password@host</c> inside <paramref name="text"/>.</summary>
    public static string RedactUrl(string text) => UrlPassword().Replace(text, m => $"{m.Groups["head"].Value}{Mask}@");

    /// <summary>
    /// A secret-bearing URL as it may be shown: by structure, not by guessing where a password ends. Everything
    /// between <c>://</c> and the last <c>@</c> (user and password, whatever they contain) becomes <see cref="Mask"/>;
    /// without an <c>@</c>, a host part that is not host[:port] (a password whose host was left out) is masked; a
    /// value that is not <c>scheme://...</c> at all is masked whole, since where its secret is cannot be known.
    /// </summary>
    public static string MaskSecretUrl(string? value)
    {
        if (string.IsNullOrEmpty(value)) return value ?? "";
        if (UserInfo(value) is var (start, end)) return $"{value[..start]}{Mask}@{value[(end + 1)..]}";
        if (!IsUrl(value)) return Mask;
        // No '@': the authority should be host[:port] (or a list of them). Anything else after a colon may be a
        // password whose host was left out ("redis://:secret", "mongodb://admin:secret"), so the authority is hidden.
        var hostStart = value.IndexOf("://", StringComparison.Ordinal) + 3;
        var hostEnd = value.IndexOfAny(['/', '?', '#'], hostStart);
        if (hostEnd < 0) hostEnd = value.Length;
        return HostsOnly(value.AsSpan(hostStart, hostEnd - hostStart)) ? value : $"{value[..hostStart]}{Mask}{value[hostEnd..]}";
    }

    // host, host:port, [v6], [v6]:port, comma-separated; a port is digits only.
    private static bool HostsOnly(ReadOnlySpan<char> authority)
    {
        foreach (var range in authority.Split(','))
        {
            var host = authority[range];
            if (host.StartsWith('['))
            {
                var close = host.IndexOf(']');
                if (close < 0) return false;
                host = host[(close + 1)..];
                if (host.IsEmpty) continue;
                if (host[0] != ':') return false;
                host = host[1..];
                if (host.IsEmpty || host.ContainsAnyExcept(Digits)) return false;
                continue;
            }
            var colon = host.IndexOf(':');
            if (colon < 0) continue;
            var port = host[(colon + 1)..];
            if (port.IsEmpty || port.ContainsAnyExcept(Digits)) return false;
        }
        return true;
    }

    private static readonly System.Buffers.SearchValues<char> Digits = System.Buffers.SearchValues.Create("0123456789");

    /// <summary>The password inside a <c>scheme://user:password@host</c> value (found by the same structure), or null.</summary>
    public static string? UrlPassword(string? value)
    {
        if (string.IsNullOrEmpty(value) || UserInfo(value) is not var (start, end)) return null;
        var colon = value.IndexOf(':', start);
        return colon >= 0 && colon + 1 < end ? value[(colon + 1)..end] : null;
    }

    // Where the user info of a URL starts (after "://") and where it ends (the last '@'), or null when it has none.
    private static (int Start, int End)? UserInfo(string value)
    {
        if (!IsUrl(value)) return null;
        var start = value.IndexOf("://", StringComparison.Ordinal) + 3;
        var at = value.LastIndexOf('@');
        return at >= start ? (start, at) : null;
    }

    private static bool IsUrl(string value)
    {
        var scheme = value.IndexOf("://", StringComparison.Ordinal);
        return scheme > 0 && IsScheme(value.AsSpan(0, scheme));
    }

    private static bool IsScheme(ReadOnlySpan<char> text)
    {
        if (!char.IsAsciiLetter(text[0])) return false;
        foreach (var c in text) if (!(char.IsAsciiLetterOrDigit(c) || c is '+' or '-' or '.')) return false;
        return true;
    }

    /// <summary>Hides <c>Password=...</c> (and similar) pairs in an ADO.NET or StackExchange.Redis connection string, and URL passwords.</summary>
    public static string RedactConnectionString(string text) =>
        RedactUrl(KeyValuePassword().Replace(text, m => $"{m.Groups["key"].Value}={Mask}"));

    /// <summary>Hides each of <paramref name="secrets"/> wherever it occurs in <paramref name="text"/>, then redacts URLs and pairs.</summary>
    public static string Redact(string text, IEnumerable<string?> secrets)
    {
        foreach (var secret in secrets)
            if (!string.IsNullOrEmpty(secret) && secret.Length >= 3) text = text.Replace(secret, Mask, StringComparison.Ordinal);
        return RedactConnectionString(text);
    }

    /// <summary>
    /// <paramref name="exception"/> as it may be logged or recorded on a span: itself when its text
    /// (<see cref="Exception.ToString"/>, inner exceptions and stack trace included) holds no secret; else a stand-in whose
    /// <see cref="Exception.Message"/>, <see cref="Exception.StackTrace"/> and <c>ToString()</c> are the original's with the
    /// secrets hidden (as <see cref="Redact(string, IEnumerable{string})"/> does), whose text still starts with the original
    /// type's name, and whose inner exception is redacted the same way.
    /// </summary>
    public static Exception Redact(Exception exception, IEnumerable<string?>? secrets = null)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (exception is RedactedException) return exception;
        string?[] known = secrets is null ? [] : [.. secrets];
        var text = exception.ToString();
        var clean = Redact(text, known);
        if (clean == text) return exception;
        var inner = exception.InnerException is { } i ? Redact(i, known) : null;
        var stackTrace = exception.StackTrace is { } trace ? Redact(trace, known) : null;
        return new RedactedException(exception, Redact(exception.Message, known), clean, stackTrace, inner);
    }

    [GeneratedRegex(@"(?<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]+@")]
    private static partial Regex UrlPassword();

    // The key is a whole name: any name ending in "password" (Password, sentinelPassword, ssl_password, "SSL Password"),
    // or pwd/passwd/pass/requirepass standing alone or after a separator (db_pass); "bypass" or "compass" is no key.
    // A match starts only where a name starts, so a long run of name characters is scanned once, not once per character.
    [GeneratedRegex(@"(?<key>(?<![\w.\-])[\w.\-]*?(?i:password|(?<![a-zA-Z0-9])(?:pwd|passwd|pass|requirepass)))\s*=\s*(""[^""]*""|'[^']*'|[^;,\s]*)")]
    private static partial Regex KeyValuePassword();
}
