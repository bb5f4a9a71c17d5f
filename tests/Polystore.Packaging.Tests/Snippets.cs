using System.Text.RegularExpressions;

namespace Polystore.Packaging.Tests;

/// <summary>
/// The code a document quotes and the regions of source files it quotes from. A source region runs from a line
/// <c>// &lt;snippet:NAME&gt;</c> to <c>// &lt;/snippet:NAME&gt;</c>; regions may overlap, and a name may have several
/// regions in one file (its using lines, then its code), joined by one blank line, or without one when only other
/// markers separate them. A document quotes one with <c>&lt;!-- snippet:NAME --&gt;</c> on the line before a fenced block;
/// a NAME that is a file name quotes that whole file.
/// </summary>
internal static partial class Snippets
{
    /// <summary>The quoted blocks of a Markdown document: name to (1-based line of the marker, text).</summary>
    public static IReadOnlyDictionary<string, (int Line, string Text)> Quoted(string markdownPath)
    {
        var lines = File.ReadAllLines(markdownPath);
        var quoted = new Dictionary<string, (int, string)>(StringComparer.Ordinal);
        for (var i = 0; i < lines.Length; i++)
        {
            if (QuoteMarker().Match(lines[i].Trim()) is not { Success: true } marker) continue;
            var name = marker.Groups[1].Value;
            var where = $"{Path.GetFileName(markdownPath)}:{i + 1}";
            if (i + 1 >= lines.Length || !lines[i + 1].StartsWith("```", StringComparison.Ordinal) || lines[i + 1].Length == 3)
                throw new InvalidOperationException($"{where}: snippet '{name}' is not followed by a fenced block with a language");
            var end = Array.FindIndex(lines, i + 2, l => l.TrimEnd() == "```");
            if (end < 0) throw new InvalidOperationException($"{where}: the block of snippet '{name}' is not closed");
            if (!quoted.TryAdd(name, (i + 1, Normalize(lines[(i + 2)..end]))))
                throw new InvalidOperationException($"{where}: snippet '{name}' is quoted twice");
            i = end;
        }
        return quoted;
    }

    /// <summary>The regions of every file in <paramref name="folder"/> (not below it): name to (file, text).</summary>
    public static IReadOnlyDictionary<string, (string File, string Text)> Regions(string folder)
    {
        var regions = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        foreach (var file in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
        {
            foreach (var (name, text) in RegionsOf(file))
            {
                if (!regions.TryAdd(name, (Path.GetFileName(file), text)))
                    throw new InvalidOperationException($"snippet '{name}' has regions in {regions[name].Item1} and {Path.GetFileName(file)}");
            }
        }
        return regions;
    }

    /// <summary>The regions of one source file, in the order they first open.</summary>
    public static IReadOnlyList<(string Name, string Text)> RegionsOf(string file)
    {
        var lines = File.ReadAllLines(file);
        var segments = new Dictionary<string, List<List<string>>>(StringComparer.Ordinal);
        var order = new List<string>();
        var open = new HashSet<string>(StringComparer.Ordinal);
        var adjacent = new HashSet<string>(StringComparer.Ordinal);   // closed with nothing but markers since
        for (var i = 0; i < lines.Length; i++)
        {
            var where = $"{Path.GetFileName(file)}:{i + 1}";
            var trimmed = lines[i].Trim();
            if (RegionStart().Match(trimmed) is { Success: true } start)
            {
                var name = start.Groups[1].Value;
                if (!open.Add(name)) throw new InvalidOperationException($"{where}: snippet '{name}' opens twice");
                if (!segments.TryGetValue(name, out var list))
                {
                    segments[name] = list = [];
                    order.Add(name);
                }
                if (!adjacent.Remove(name)) list.Add([]);
            }
            else if (RegionEnd().Match(trimmed) is { Success: true } end)
            {
                var name = end.Groups[1].Value;
                if (!open.Remove(name)) throw new InvalidOperationException($"{where}: snippet '{name}' closes without opening");
                adjacent.Add(name);
            }
            else
            {
                if (trimmed.Contains("snippet:", StringComparison.Ordinal))
                    throw new InvalidOperationException($"{where}: a snippet marker must be a line of its own: // <snippet:NAME> or // </snippet:NAME>");
                foreach (var name in open) segments[name][^1].Add(lines[i]);
                adjacent.Clear();
            }
        }
        if (open.Count > 0) throw new InvalidOperationException($"{Path.GetFileName(file)}: snippet(s) {string.Join(", ", open)} never close");
        return order.Select(name => (name, string.Join("\n\n", segments[name].Select(s => Normalize(s))))).ToList();
    }

    /// <summary>The lines without trailing spaces, leading and trailing blank lines, or the indentation they all share.</summary>
    public static string Normalize(IEnumerable<string> lines)
    {
        var kept = lines.Select(l => l.TrimEnd()).SkipWhile(l => l.Length == 0).Reverse().SkipWhile(l => l.Length == 0).Reverse().ToList();
        var indent = kept.Where(l => l.Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
        return string.Join("\n", kept.Select(l => l.Length == 0 ? l : l[indent..]));
    }

    [GeneratedRegex(@"^<!--\s*snippet:([A-Za-z0-9_.-]+)\s*-->$")]
    private static partial Regex QuoteMarker();

    [GeneratedRegex(@"^//\s*<snippet:([A-Za-z0-9_.-]+)>$")]
    private static partial Regex RegionStart();

    [GeneratedRegex(@"^//\s*</snippet:([A-Za-z0-9_.-]+)>$")]
    private static partial Regex RegionEnd();
}
