using Polystore.Core.Diagnostics;

namespace Polystore.Core.Tests;

/// <summary>Secrets in evidence text, wherever the cut falls.</summary>
public sealed class SnippetRedactionTests
{
    [Fact]
    public void Snippet_never_prints_part_of_a_secret_that_straddles_the_cut()
    {
        const string secret = "Sup3r-S3cret-Passw0rd";
        // A statement (e.g. from pg_stat_activity) in which the configured password starts just before the 200-character cut.
        var head = "SELECT set_config('app.note', '" + new string('n', 130) + "', false), crypt('";
        var query = head.PadRight(190, 'n') + secret + "', gen_salt('bf'))";

        var snippet = FindingText.Snippet(query, [secret], 200);
        var masked = DiagnosticRunner.Mask(new Finding("postgres", "postgres.long_running", Severity.Warning, "t",
            new Dictionary<string, string> { ["query"] = snippet }), [secret]);

        Assert.DoesNotContain(secret[..8], masked.Evidence["query"], StringComparison.Ordinal);
    }

    [Fact]
    public void Shell_quoting_keeps_a_value_one_word()
    {
        Assert.Equal("'a b'", FindingText.ShellQuote("a b"));
        Assert.Equal("'it'\\''s; rm -rf /'", FindingText.ShellQuote("it's; rm -rf /"));
    }
}
