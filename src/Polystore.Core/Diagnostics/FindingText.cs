using System.Globalization;
using System.Text;

namespace Polystore.Core.Diagnostics;

/// <summary>Small helpers every store's checks share to write evidence and remedies the same way.</summary>
public static class FindingText
{
    /// <summary>Invariant text for a number.</summary>
    public static string Num(double value, string format = "0.##") => value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>Invariant text for an integer.</summary>
    public static string Num(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>A ratio as a percentage with one decimal, for example <c>93.4%</c>.</summary>
    public static string Percent(double ratio) => (ratio * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    /// <summary>Bytes in a human unit (1024-based), for example <c>12.5 MiB</c>.</summary>
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1) { value /= 1024; unit++; }
        return unit == 0 ? $"{bytes} B" : value.ToString("0.#", CultureInfo.InvariantCulture) + " " + units[unit];
    }

    /// <summary>Query or command text cut to <paramref name="max"/> characters on one line, with secrets masked.</summary>
    public static string Snippet(string? text, IEnumerable<string?> secrets, int max = 200)
    {
        if (string.IsNullOrEmpty(text)) return "";
        // Masked before it is cut: a secret that straddled the cut would no longer match, and its first part would
        // show. (Only the first 64 KiB can reach the cut, even past collapsed white space, for any sane max.)
        text = Redactor.Redact(text.Length > 65_536 ? text[..65_536] : text, secrets);
        var sb = new StringBuilder(Math.Min(text.Length, max + 1));
        var lastSpace = false;
        foreach (var ch in text)
        {
            var space = char.IsWhiteSpace(ch);
            if (space && lastSpace) continue;
            sb.Append(space ? ' ' : ch);
            lastSpace = space;
            if (sb.Length > max) break;
        }
        var line = sb.ToString().Trim();
        return line.Length > max ? line[..max] + "…" : line;
    }

    /// <summary>
    /// <paramref name="value"/> as one shell word in single quotes (a quote inside written as <c>'\''</c>), so a key or
    /// name pasted into a remedy's command line is passed as is, never split or run.
    /// </summary>
    public static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>Builds an evidence dictionary from name/value pairs, skipping null values.</summary>
    public static IReadOnlyDictionary<string, string> Evidence(params (string Name, object? Value)[] pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var result = new Dictionary<string, string>(pairs.Length, StringComparer.Ordinal);
        foreach (var (name, value) in pairs)
        {
            if (value is null) continue;
            result[name] = value switch
            {
                double d => Num(d),
                float f => Num(f),
                decimal m => m.ToString("0.##", CultureInfo.InvariantCulture),
                TimeSpan t => Num(t.TotalSeconds, "0.#") + " s",
                DateTime dt => dt.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                DateTimeOffset dto => dto.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
                _ => value.ToString() ?? "",
            };
        }
        return result;
    }
}
