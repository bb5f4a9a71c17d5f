using System.Globalization;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Polystore.Samples.UsersService;

/// <summary>A user's version as a strong entity tag (<c>"3"</c>), and the versions an If-Match asks for.</summary>
internal static class ETags
{
    public static string Of(long version) => $"\"{version.ToString(CultureInfo.InvariantCulture)}\"";

    /// <summary>
    /// What If-Match asks for: Any for <c>*</c>, else the versions its strong tags name (weak tags never match an
    /// If-Match, RFC 9110 13.1.1, and tags that are not versions match nothing). Null when it is not a list of entity
    /// tags at all (an unquoted value, a tag left open, an empty list): a client error, not a stale version.
    /// </summary>
    public static (bool Any, IReadOnlyList<long> Versions)? ParseIfMatch(StringValues header)
    {
        if (!EntityTagHeaderValue.TryParseStrictList(header, out var tags) || tags.Count == 0) return null;
        if (tags.Any(t => t.Equals(EntityTagHeaderValue.Any))) return (true, []);
        var versions = new List<long>();
        foreach (var tag in tags.Where(t => !t.IsWeak))
        {
            var value = tag.Tag.Value;
            // Strong comparison is character by character: "0001" is not the tag "1".
            if (value is { Length: > 2 } && long.TryParse(value.AsSpan(1, value.Length - 2), NumberStyles.None, CultureInfo.InvariantCulture, out var version)
                && value == Of(version))
                versions.Add(version);
        }
        return (false, versions);
    }

    /// <summary>Whether If-None-Match names <paramref name="version"/> (weak comparison) or is <c>*</c>.</summary>
    public static bool NoneMatch(StringValues header, long version) =>
        EntityTagHeaderValue.TryParseList(header, out var tags)
        && tags.Any(t => t.Equals(EntityTagHeaderValue.Any) || t.Compare(new EntityTagHeaderValue(Of(version)), useStrongComparison: false));
}
