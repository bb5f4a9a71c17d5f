namespace Polystore.Redis;

/// <summary>Key naming shared by the toolkit.</summary>
internal static class RedisKeys
{
    /// <summary>
    /// "{prefix:name}" - a hash tag around the whole logical name, so every key derived from it by
    /// appending a suffix (":log", ":lock", ":fence") lands in the same cluster slot and multi-key
    /// scripts never fail with CROSSSLOT.
    /// </summary>
    public static string Tagged(string prefix, string name, string suffix = "") => Key(TagStart(prefix), name, suffix);

    /// <summary>"{prefix:" - computed once per limiter or lock provider, so each key is one allocation (<see cref="Key"/>).</summary>
    public static string TagStart(string prefix) => "{" + prefix + ":";

    /// <summary>"{prefix:name}suffix" from <see cref="TagStart"/>.</summary>
    public static string Key(string tagStart, string name, string suffix) => string.Concat(tagStart, name, "}", suffix);

    public static void ValidatePrefix(string prefix, string parameter)
    {
        if (string.IsNullOrWhiteSpace(prefix)) throw new ArgumentException($"{parameter} must not be empty.", parameter);
        if (prefix.Contains('{', StringComparison.Ordinal) || prefix.Contains('}', StringComparison.Ordinal))
            throw new ArgumentException($"{parameter} '{prefix}' must not contain '{{' or '}}': the toolkit adds its own hash tags.", parameter);
    }

    public static void ValidateName(string name, string parameter)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException($"{parameter} must not be empty.", parameter);
        ValidateUtf16(name, parameter);
    }

    /// <summary>
    /// Refuses a name with a lone surrogate: it has no UTF-8 form, so it would reach Redis as U+FFFD, and two
    /// different names ("a\uD800", "a\uDBFF") would share one key. Costs one vectorized scan for the usual name.
    /// </summary>
    public static void ValidateUtf16(string name, string parameter)
    {
        var span = name.AsSpan();
        var at = span.IndexOfAnyInRange('\uD800', '\uDFFF');
        if (at < 0) return;
        for (var i = at; i < span.Length; i++)
        {
            if (!char.IsSurrogate(span[i])) continue;
            if (char.IsHighSurrogate(span[i]) && i + 1 < span.Length && char.IsLowSurrogate(span[i + 1])) { i++; continue; }
            throw new ArgumentException($"{parameter} has a lone surrogate (U+{(int)span[i]:X4}) at index {i}: it is not valid text, and two such names would share one Redis key.", parameter);
        }
    }
}
