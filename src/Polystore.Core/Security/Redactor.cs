using System.Text.RegularExpressions;

namespace Polystore.Core;

/// <summary>Removes secrets from text that may be printed, logged or put in an exception message.</summary>
public static partial class Redactor
{
    /// <summary>What a hidden secret is shown as.</summary>
    public const string Mask = "***";

    /// <summary>Replaces the password in every <c>scheme://user:password@host</c> inside <paramref name="text"/>.</summary>
    public static string RedactUrl(string text) => UrlPassword().Replace(text, m => $"{m.Groups["head"].Value}{Mask}@");

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

    [GeneratedRegex(@"(?<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]+@")]
    private static partial Regex UrlPassword();

    [GeneratedRegex(@"(?<key>(?i:password|pwd|pass|passwd|sentinelPassword|requirepass))\s*=\s*(""[^""]*""|'[^']*'|[^;,\s]*)")]
    private static partial Regex KeyValuePassword();
}
