using System.Diagnostics;
using System.Text;
using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

/// <summary>
/// Config files a real deployment never has and an attacker or a careless operator easily makes: each is refused
/// with one error naming the file (and the limit), never an exhausted process, a hang or a stack overflow.
/// </summary>
public sealed class HostileConfigTests
{
    private static readonly Dictionary<string, string> NoEnvironment = [];

    private static ConfigError FailsWith(string directory)
    {
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(directory, NoEnvironment));
        return e.Errors[0];
    }

    private static ConfigError Fails(string yaml)
    {
        using var folder = new ConfigFolder();
        File.WriteAllText(Path.Combine(folder.Path, "redis.yaml"), yaml);
        return FailsWith(folder.Path);
    }

    [Fact]
    public void An_alias_bomb_is_refused_at_its_first_anchor()
    {
        var yaml = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i < 12; i++) yaml.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 10))}]\n");
        var error = Fails(yaml.ToString());
        Assert.Equal(("redis.yaml", 1), (error.Source.File, error.Source.Line));
        Assert.Contains("anchors", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_alias_alone_is_refused_too()
    {
        var error = Fails("connection:\n  url: *elsewhere\n");
        Assert.Contains("aliases", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fifteen_thousand_nested_brackets_are_refused_without_a_stack_overflow()
    {
        var error = Fails(new string('[', 15_000) + new string(']', 15_000));
        Assert.Contains($"more than {YamlConfigReader.MaxDepth} levels", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deep_mappings_are_refused_and_name_the_path()
    {
        var yaml = new StringBuilder();
        for (var i = 0; i < 40; i++) yaml.Append(new string(' ', i * 2)).Append($"k{i}:\n");
        var error = Fails(yaml.ToString());
        Assert.Contains("levels deep", error.Message, StringComparison.Ordinal);
        Assert.StartsWith("k0.k1.k2", error.KeyPath, StringComparison.Ordinal);
    }

    [Fact]
    public void Too_many_keys_are_refused_in_linear_time()
    {
        var yaml = new StringBuilder("pool:\n");
        for (var i = 0; i < 60_000; i++) yaml.Append("  k").Append(i).Append(": 1\n");
        var error = Fails(yaml.ToString());
        Assert.Contains("more than 100,000 values", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Many_unknown_keys_are_each_reported()
    {
        var yaml = new StringBuilder("pool:\n");
        for (var i = 0; i < 20_000; i++) yaml.Append("  k").Append(i).Append(": 1\n");
        using var folder = new ConfigFolder(("redis.yaml", yaml.ToString()));
        var e = Assert.Throws<ConfigException>(() => PolystoreConfig.Load(folder.Path, NoEnvironment));
        Assert.Equal(20_000, e.Errors.Count);
    }

    [Fact]
    public void Duplicate_keys_are_each_named()
    {
        var error = Fails("connection:\n  url: redis://a:6379\n  url: redis://b:6379\n");
        Assert.Equal(("connection.url", 3), (error.KeyPath, error.Source.Line));
        Assert.Contains("appears twice", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_over_the_size_limit_is_refused_unread()
    {
        var error = Fails("# " + new string('x', ConfigFileReader.MaxBytes) + "\n");
        Assert.Contains("larger than 1024 KiB", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_that_is_not_utf8_is_refused()
    {
        using var folder = new ConfigFolder();
        File.WriteAllBytes(Path.Combine(folder.Path, "redis.yaml"), [.. "connection:\n  url: "u8, 0xC3, 0x28, (byte)'\n']);
        var error = FailsWith(folder.Path);
        Assert.Contains("not UTF-8", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_directory_named_like_a_config_file_is_an_error_not_an_absent_store()
    {
        using var folder = new ConfigFolder(("redis.yaml", "connection:\n  url: redis://localhost:6379\n"));
        Directory.CreateDirectory(Path.Combine(folder.Path, "postgresql.yaml"));
        var error = FailsWith(folder.Path);
        Assert.Equal("postgresql.yaml", error.Source.File);
        Assert.Contains("is a directory", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Special_files_and_broken_links_are_refused_without_reading_them()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("FIFOs and /dev/zero are Linux files");
        using var folder = new ConfigFolder();
        using (var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", Path.Combine(folder.Path, "postgresql.yaml")) { UseShellExecute = false })!)
            mkfifo.WaitForExit();
        Assert.Contains("not a regular file", FailsWith(folder.Path).Message, StringComparison.Ordinal);

        File.Delete(Path.Combine(folder.Path, "postgresql.yaml"));
        File.CreateSymbolicLink(Path.Combine(folder.Path, "postgresql.yaml"), "/dev/zero");
        Assert.Contains("not a regular file", FailsWith(folder.Path).Message, StringComparison.Ordinal);

        File.Delete(Path.Combine(folder.Path, "postgresql.yaml"));
        File.CreateSymbolicLink(Path.Combine(folder.Path, "postgresql.yaml"), Path.Combine(folder.Path, "nowhere.yaml"));
        Assert.Contains("does not exist", FailsWith(folder.Path).Message, StringComparison.Ordinal);

        File.Delete(Path.Combine(folder.Path, "postgresql.yaml"));
        File.CreateSymbolicLink(Path.Combine(folder.Path, "postgresql.yaml"), Path.Combine(folder.Path, "loop.yaml"));
        File.CreateSymbolicLink(Path.Combine(folder.Path, "loop.yaml"), Path.Combine(folder.Path, "postgresql.yaml"));
        Assert.Contains("loops", FailsWith(folder.Path).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("${A:-${B}}", "b-value")]
    [InlineData("${A:-${NOPE:-deep}}", "deep")]
    [InlineData("${A:-a}b}", "ab}")]
    [InlineData("${B:-${A}}", "b-value")]
    [InlineData("x$${B}y", "x${B}y")]
    public void Defaults_expand_as_a_shell_would(string reference, string expected)
    {
        var errors = new List<ConfigError>();
        var value = VariableSubstitution.Expand(reference, ConfigSource.Default, "k", name => name == "B" ? "b-value" : null, errors);
        Assert.Empty(errors);
        Assert.Equal(expected, value);
    }

    [Fact]
    public void A_bad_reference_is_an_error_that_does_not_quote_it()
    {
        var errors = new List<ConfigError>();
        VariableSubstitution.Expand("${p@ss-w0rd}", ConfigSource.Default, "connection.password", _ => null, errors);
        var error = Assert.Single(errors);
        Assert.DoesNotContain("p@ss-w0rd", error.Message, StringComparison.Ordinal);
        Assert.Contains("not a variable name", error.Message, StringComparison.Ordinal);
    }
}
