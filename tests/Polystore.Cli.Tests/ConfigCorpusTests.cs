using System.Diagnostics;
using System.Text;

namespace Polystore.Cli.Tests;

/// <summary>
/// A generated corpus of malformed config folders (types, bombs, depth, size, special files, encodings, variables,
/// secrets), each checked by the real <c>polystore config check</c> in a process capped at 512 MB of heap: it answers
/// 0 or 2, prints no stack trace and no secret, and never hangs (a hang fails the case at its 20 s guard).
/// </summary>
public sealed class ConfigCorpusTests
{
    private const string Secret = "corpus-S3cret-pw";
    // Catches a hang, not a slow start: with the whole suite running in parallel on 2 cores, a config check has taken over 20 s.
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(90);

    private sealed record Case(string Name, Action<string> Write);

    private static Case Yaml(string name, string file, string text) => new(name, dir => File.WriteAllText(Path.Combine(dir, file), text));
    private static Case Bytes(string name, string file, byte[] bytes) => new(name, dir => File.WriteAllBytes(Path.Combine(dir, file), bytes));

    private static IEnumerable<Case> Corpus()
    {
        // Types: every store's keys given values of the wrong shape.
        foreach (var (file, key) in new[] { ("postgresql.yaml", "connection:\n  port"), ("postgresql.yaml", "pool:\n  max_size"), ("redis.yaml", "pool:\n  socket_timeout"), ("mongodb.yaml", "pool:\n  max_pool_size"), ("postgresql.yaml", "performance:\n  jit") })
            foreach (var value in new[] { "abc", "[1, 2]", "{a: 1}", "-99999999999999999999", "1e400", "''", "\"\\u0000\"" })
                yield return Yaml($"type {file} {key.Replace('\n', ' ')}={value}", file, $"{key}: {value}\n");
        yield return Yaml("top-level list", "redis.yaml", "- a\n- b\n");
        yield return Yaml("top-level scalar", "redis.yaml", "just text\n");
        yield return Yaml("two documents", "redis.yaml", "connection: {}\n---\nconnection: {}\n");
        yield return Yaml("complex key", "redis.yaml", "? [a, b]\n: 1\n");
        yield return Yaml("duplicate keys", "redis.yaml", "pool:\n  socket_timeout: 1\n  socket_timeout: 2\n");
        yield return Yaml("syntax error", "postgresql.yaml", "connection:\n  host: [unclosed\n");
        yield return Yaml("tab indentation", "postgresql.yaml", "connection:\n\thost: x\n");
        // Bombs and depth.
        var bomb = new StringBuilder("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i < 12; i++) bomb.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 10))}]\n");
        yield return Yaml("alias bomb", "redis.yaml", bomb.ToString());
        yield return Yaml("15,000 brackets", "redis.yaml", new string('[', 15_000) + new string(']', 15_000));
        yield return Yaml("15,000 braces", "redis.yaml", new string('{', 15_000) + new string('}', 15_000));
        yield return Yaml("deep mapping", "redis.yaml", string.Concat(Enumerable.Range(0, 200).Select(i => new string(' ', i) + "k:\n")));
        yield return Yaml("deep list", "redis.yaml", string.Concat(Enumerable.Range(0, 200).Select(i => new string(' ', i * 2) + "- \n")));
        yield return Yaml("200,000 keys", "redis.yaml", "pool:\n" + string.Concat(Enumerable.Range(0, 200_000).Select(i => $"  k{i}: 1\n")));
        yield return Yaml("60,000 keys", "redis.yaml", "pool:\n" + string.Concat(Enumerable.Range(0, 60_000).Select(i => $"  k{i}: 1\n")));
        yield return Yaml("2 MB comment", "redis.yaml", "# " + new string('x', 2_000_000) + "\n");
        yield return Yaml("1 MB scalar", "redis.yaml", "connection:\n  url: \"" + new string('x', 1_000_000) + "\"\n");
        // Special files.
        yield return new Case("directory", dir => Directory.CreateDirectory(Path.Combine(dir, "postgresql.yaml")));
        yield return new Case("symlink to /dev/zero", dir => File.CreateSymbolicLink(Path.Combine(dir, "postgresql.yaml"), "/dev/zero"));
        yield return new Case("symlink to /dev/urandom", dir => File.CreateSymbolicLink(Path.Combine(dir, "redis.yaml"), "/dev/urandom"));
        yield return new Case("dangling symlink", dir => File.CreateSymbolicLink(Path.Combine(dir, "postgresql.yaml"), Path.Combine(dir, "missing")));
        yield return new Case("symlink loop", dir =>
        {
            File.CreateSymbolicLink(Path.Combine(dir, "postgresql.yaml"), Path.Combine(dir, "b.yaml"));
            File.CreateSymbolicLink(Path.Combine(dir, "b.yaml"), Path.Combine(dir, "postgresql.yaml"));
        });
        yield return new Case("fifo", dir =>
        {
            using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", Path.Combine(dir, "redis.yaml")) { UseShellExecute = false })!;
            mkfifo.WaitForExit();
        });
        yield return new Case("symlink to a directory", dir => File.CreateSymbolicLink(Path.Combine(dir, "redis.yaml"), "/tmp"));
        // Encodings.
        yield return Bytes("utf-16 with BOM", "redis.yaml", Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes("connection:\n  url: redis://h:6379\n")).ToArray());
        yield return Bytes("invalid utf-8", "redis.yaml", [.. "connection:\n  url: "u8, 0xFF, 0xFE, (byte)'\n']);
        yield return Bytes("NUL bytes", "redis.yaml", [.. "connection:\n  url: a"u8, 0, 0, (byte)'\n']);
        yield return Bytes("utf-8 BOM and CRLF", "redis.yaml", [.. Encoding.UTF8.GetPreamble(), .. "connection:\r\n  url: redis://127.0.0.1:6379\r\n"u8]);
        yield return Bytes("lone CR", "redis.yaml", [.. "connection:\r  url: redis://127.0.0.1:6379\r"u8]);
        yield return Yaml("control characters", "redis.yaml", "connection:\n  url: \"redis://\u0001\u0002:6379\"\n");
        // Variables.
        yield return Yaml("unterminated ${", "postgresql.yaml", "connection:\n  password: ${CORPUS_PW\n");
        yield return Yaml("invalid variable name", "postgresql.yaml", $"connection:\n  password: ${{{Secret}}}\n");
        yield return Yaml("nested default", "postgresql.yaml", "connection:\n  password: ${CORPUS_UNSET:-${CORPUS_PW}}\n");
        yield return Yaml("default with brace", "postgresql.yaml", "connection:\n  password: ${CORPUS_UNSET:-a}b}\n");
        yield return Yaml("20 nested defaults", "postgresql.yaml", "connection:\n  password: " + string.Concat(Enumerable.Repeat("${CORPUS_UNSET:-", 20)) + "x" + new string('}', 20) + "\n");
        yield return Yaml("secret variable in a number", "postgresql.yaml", "connection:\n  port: ${CORPUS_PW}\n");
        yield return Yaml("secret variable in an enum", "postgresql.yaml", "connection:\n  sslmode: ${CORPUS_PW}\n");
        yield return Yaml("unset variable", "postgresql.yaml", "connection:\n  password: ${CORPUS_NEVER_SET}\n");
        yield return Yaml("literal $${", "postgresql.yaml", "connection:\n  password: $${CORPUS_PW}\n");
        // Secrets in places and shapes a regular expression would miss.
        yield return Yaml("cluster node password", "redis.yaml", $"cluster:\n  enabled: true\n  nodes:\n    - redis://:{Secret}@127.0.0.1:7000\n");
        yield return Yaml("malformed redis url", "redis.yaml", $"connection:\n  url: redis//:{Secret}@host:6379\n");
        yield return Yaml("malformed mongodb uri", "mongodb.yaml", $"connection:\n  uri: mongodb:/u:{Secret}@host\n  database: d\n");
        yield return Yaml("password with a space", "redis.yaml", $"connection:\n  url: \"redis://:{Secret} x@127.0.0.1:6379\"\n");
        yield return Yaml("password with @", "redis.yaml", $"connection:\n  url: \"redis://:{Secret}@x@127.0.0.1:6379\"\n");
        yield return Yaml("password with /", "redis.yaml", $"connection:\n  url: \"redis://:{Secret}/x@127.0.0.1:6379\"\n");
        yield return Yaml("sentinel password", "redis.yaml", $"sentinel:\n  enabled: true\n  master_name: m\n  password: {Secret}\n  sentinels: []\n");
        yield return Yaml("redis db path", "redis.yaml", $"connection:\n  url: redis://:{Secret}@127.0.0.1:6379/abc\n");
        // Values a driver would reject later.
        yield return Yaml("pool_timeout above Npgsql's", "postgresql.yaml", "pool:\n  pool_timeout: 5000\n");
        yield return Yaml("pool overflow", "postgresql.yaml", "pool:\n  max_size: 2147483647\n  max_overflow: 10\n");
        yield return Yaml("command_timeout overflow", "postgresql.yaml", "connection:\n  command_timeout: 2147483647\n");
    }

    [Fact]
    public async Task Every_malformed_folder_is_answered_with_0_or_2_and_no_trace_or_secret()
    {
        var cases = Corpus().ToList();
        Assert.True(cases.Count >= 60, $"the corpus has {cases.Count} cases");
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var gate = new SemaphoreSlim(4);
        await Task.WhenAll(cases.Select(async c =>
        {
            await gate.WaitAsync(TestContext.Current.CancellationToken);
            var dir = Directory.CreateTempSubdirectory("polystore-corpus-").FullName;
            try
            {
                c.Write(dir);
                var env = new Dictionary<string, string?>
                {
                    ["CORPUS_PW"] = Secret,
                    // A heap past 512 MB fails the process, so a bomb that gets through shows as a wrong exit code.
                    ["DOTNET_GCHeapHardLimit"] = "0x20000000",
                };
                using var guard = new CancellationTokenSource(Guard);
                CliRunner.Result result;
                try { result = await CliRunner.RunAsync(env, guard.Token, "config", "check", "--dir", dir); }
                catch (OperationCanceledException) { failures.Add($"{c.Name}: no answer within {Guard.TotalSeconds} s"); return; }
                var all = result.Stdout + result.Stderr;
                if (result.ExitCode is not (0 or 2)) failures.Add($"{c.Name}: exit {result.ExitCode}: {result.Stderr.Split('\n')[0]}");
                if (all.Contains("   at ", StringComparison.Ordinal)) failures.Add($"{c.Name}: stack trace");
                if (all.Contains(Secret, StringComparison.Ordinal)) failures.Add($"{c.Name}: secret printed");
            }
            finally
            {
                gate.Release();
                Directory.Delete(dir, recursive: true);
            }
        }));
        Assert.True(failures.IsEmpty, string.Join("\n", failures.OrderBy(f => f, StringComparer.Ordinal)));
    }
}
