using System.Xml.Linq;

namespace Polystore.Packaging.Tests;

/// <summary>
/// The README's "Install and use" code is the consumer app's (ConsumerApp/App), which the consumer tests build from the
/// packed packages and run: every quoted snippet equals its region there, and every region is quoted. No packing here.
/// </summary>
public sealed class ReadmeSnippetTests
{
    private static readonly string RepositoryRoot = FindRepositoryRoot();
    private static readonly string Readme = Path.Combine(RepositoryRoot, "README.md");
    private static readonly string App = Path.Combine(RepositoryRoot, "tests", "Polystore.Packaging.Tests", "ConsumerApp", "App");

    [Fact]
    public void Every_snippet_the_README_quotes_is_the_consumer_apps_code()
    {
        var regions = Snippets.Regions(App);
        var quoted = Snippets.Quoted(Readme);
        Assert.NotEmpty(quoted);
        foreach (var (name, (line, text)) in quoted)
        {
            var file = Path.Combine(App, name);
            var expected = regions.TryGetValue(name, out var region) ? region.Text
                : File.Exists(file) ? Snippets.Normalize(File.ReadAllLines(file))
                : throw new Xunit.Sdk.XunitException($"README.md:{line} quotes snippet '{name}', which is neither a region nor a file of {App}");
            Assert.True(expected == text, $"README.md:{line}: snippet '{name}' differs from the app's code.\n--- app ---\n{expected}\n--- README ---\n{text}");
        }
    }

    [Fact]
    public void Every_region_of_the_consumer_app_and_its_appsettings_are_quoted()
    {
        var quoted = Snippets.Quoted(Readme);
        var regions = Snippets.Regions(App);
        Assert.NotEmpty(regions);
        Assert.All(regions.Keys.Append("appsettings.json"), name => Assert.True(quoted.ContainsKey(name), $"README.md does not quote snippet '{name}'"));
    }

    [Fact]
    public void The_package_table_names_every_shipped_package()
    {
        var install = Section(File.ReadAllText(Readme), "## Install and use");
        var packages = XDocument.Load(Path.Combine(RepositoryRoot, "Polystore.slnx")).Descendants("Project")
            .Select(p => ((string?)p.Attribute("Path") ?? "").Replace('\\', '/'))
            .Where(p => p.StartsWith("src/", StringComparison.Ordinal))
            .Select(Path.GetFileNameWithoutExtension).ToList();
        Assert.NotEmpty(packages);
        Assert.All(packages, id => Assert.Contains($"| `{id}` |", install, StringComparison.Ordinal));
    }

    [Fact]
    public void Snippet_regions_join_their_pieces_and_markers_must_match()
    {
        var folder = Directory.CreateTempSubdirectory("polystore-snippets-").FullName;
        try
        {
            var source = Path.Combine(folder, "Program.cs");
            File.WriteAllLines(source,
            [
                "// <snippet:a>",
                "// <snippet:b>",
                "using One;",
                "// </snippet:a>",
                "// <snippet:a>",
                "using Two;",
                "// </snippet:b>",
                "// </snippet:a>",
                "var x = 1;",
                "if (x > 0)",
                "{",
                "    // <snippet:a>",
                "    Call(x);",
                "        Nested();",
                "    // </snippet:a>",
                "}",
            ]);
            Assert.Equal([("a", "using One;\nusing Two;\n\nCall(x);\n    Nested();"), ("b", "using One;\nusing Two;")], Snippets.RegionsOf(source));

            File.WriteAllLines(source, ["// <snippet:a>", "x();"]);
            Assert.Contains("never close", Assert.Throws<InvalidOperationException>(() => Snippets.RegionsOf(source)).Message, StringComparison.Ordinal);
            File.WriteAllLines(source, ["x(); // </snippet:a>"]);
            Assert.Contains("a line of its own", Assert.Throws<InvalidOperationException>(() => Snippets.RegionsOf(source)).Message, StringComparison.Ordinal);

            var markdown = Path.Combine(folder, "README.md");
            File.WriteAllLines(markdown, ["text", "<!-- snippet:a -->", "```csharp", "  Call(x);", "```", "<!-- snippet:b -->", "no block"]);
            Assert.Contains("not followed by a fenced block", Assert.Throws<InvalidOperationException>(() => Snippets.Quoted(markdown)).Message, StringComparison.Ordinal);
            File.WriteAllLines(markdown, ["text", "<!-- snippet:a -->", "```csharp", "  Call(x);", "```"]);
            Assert.Equal((2, "Call(x);"), Snippets.Quoted(markdown)["a"]);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The text of a Markdown section: from its heading to the next heading of the same level.</summary>
    private static string Section(string markdown, string heading)
    {
        var start = markdown.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"README.md has no section '{heading}'");
        var end = markdown.IndexOf("\n## ", start + heading.Length + 2, StringComparison.Ordinal);
        return end < 0 ? markdown[start..] : markdown[start..end];
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Polystore.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no Polystore.slnx above {AppContext.BaseDirectory}");
    }
}
