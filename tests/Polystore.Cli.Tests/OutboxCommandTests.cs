using System.Text.Json;
using Npgsql;
using Polystore.Postgres;
using Polystore.Testing;

namespace Polystore.Cli.Tests;

/// <summary><c>polystore outbox prune</c> and <c>polystore outbox dead-letters ...</c> on the private server, each test in a schema of its own.</summary>
public sealed class OutboxCommandTests
{
    private static readonly Dictionary<string, string?> Env = new() { ["POLYSTORE_CONFIG_DIR"] = TestServers.ConfigDirectory };
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static NpgsqlDataSource Admin()
    {
        var builder = PostgresDriverSettings.Build(TestServers.Postgres);
        (builder.Host, builder.Port, builder.LoadBalanceHosts) = (TestServers.Postgres.Connection.Host, TestServers.Postgres.Connection.Port, false);
        return NpgsqlDataSource.Create(builder.ConnectionString);
    }

    private static async Task<long> ScalarAsync(NpgsqlDataSource admin, string sql)
    {
        await using var command = admin.CreateCommand(sql);
        return Convert.ToInt64(await command.ExecuteScalarAsync(Ct), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task ExecAsync(NpgsqlDataSource admin, string sql)
    {
        await using var command = admin.CreateCommand(sql);
        await command.ExecuteNonQueryAsync(Ct);
    }

    /// <summary>Creates the users app's tables in a new schema through the CLI itself.</summary>
    private static async Task<string> NewSchemaAsync(string prefix)
    {
        var schema = TestServers.UniqueName(prefix);
        var status = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "status", "--json");
        Assert.True(status.ExitCode == 0, status.Stderr);
        return schema;
    }

    [Fact]
    public async Task Prune_removes_delivered_events_past_the_age_and_names_the_slowest_subscriber()
    {
        var schema = await NewSchemaAsync("cliprune");
        await using var admin = Admin();
        try
        {
            await ExecAsync(admin, $$"""
                INSERT INTO "{{schema}}".outbox (stream, aggregate_id, version, type, payload) SELECT 'user', g::text, 1, 'user.created', '{}' FROM generate_series(1, 30) g;
                INSERT INTO "{{schema}}".outbox_checkpoints (name, tx_id, event_id) SELECT 'fast', tx_id, id FROM "{{schema}}".outbox ORDER BY tx_id DESC, id DESC LIMIT 1;
                INSERT INTO "{{schema}}".outbox_checkpoints (name, tx_id, event_id) SELECT 'slow', tx_id, id FROM "{{schema}}".outbox ORDER BY tx_id, id OFFSET 9 LIMIT 1;
                """);

            var young = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "prune", "--json");
            Assert.True(young.ExitCode == 0, young.Stderr);
            using (var j = JsonDocument.Parse(young.Stdout)) Assert.Equal(0, j.RootElement.GetProperty("deleted").GetInt64());

            var pruned = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "prune", "--older-than", "0", "--batch-size", "3", "--json");
            Assert.True(pruned.ExitCode == 0, pruned.Stderr);
            using (var j = JsonDocument.Parse(pruned.Stdout))
            {
                Assert.Equal(10, j.RootElement.GetProperty("deleted").GetInt64());
                Assert.Equal(4, j.RootElement.GetProperty("batches").GetInt32());
                Assert.Equal("slow", j.RootElement.GetProperty("slowest_subscriber").GetString());
            }
            Assert.Equal(20, await ScalarAsync(admin, $"SELECT count(*) FROM \"{schema}\".outbox"));

            var table = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "prune", "--older-than", "1h");
            Assert.True(table.ExitCode == 0, table.Stderr);
            Assert.Contains("slow", table.Stdout, StringComparison.Ordinal);
            Assert.Contains("Slowest subscriber", table.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            await ExecAsync(admin, $"DROP SCHEMA \"{schema}\" CASCADE");
        }
    }

    [Theory]
    [InlineData("--older-than", "soon", "--older-than must be a duration")]
    [InlineData("--older-than", "-5m", "--older-than")]
    [InlineData("--batch-size", "0", "--batch-size must be between 1 and 100,000")]
    public async Task Prune_refuses_bad_options_with_exit_code_2_naming_them(string option, string value, string message)
    {
        var result = await CliRunner.RunAsync(Env, "outbox", "prune", option, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dead_letters_are_listed_shown_replayed_once_and_dropped_with_a_record()
    {
        var schema = await NewSchemaAsync("clidead");
        await using var admin = Admin();
        try
        {
            // Two dead letters of the users projection, as the dispatcher leaves them; and one of another subscriber.
            await ExecAsync(admin, $$"""
                INSERT INTO "{{schema}}".outbox_dead_letters (name, event_id, tx_id, type, payload, attempts, last_error, stream, aggregate_id, version, created_at) VALUES
                  ('user_profiles', 41, '5', 'user.created', '{"id":7,"email":"ada@example.com","name":"Ada","region":"eu","version":1,"created_at":"2026-01-01T00:00:00+00:00"}', 5, 'the read model was down', 'user', '7', 1, now()),
                  ('user_profiles', 42, '6', 'user.created', '{"id":8,"email":"bob@example.com","name":"Bob","region":"us","version":1,"created_at":"2026-01-01T00:00:00+00:00"}', 5, 'the read model was down', 'user', '8', 1, now()),
                  ('billing', 43, '7', 'user.created', '{}', 3, 'no card', 'user', '9', 1, now())
                """);

            var list = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "list", "--json");
            Assert.True(list.ExitCode == 0, list.Stderr);
            using (var j = JsonDocument.Parse(list.Stdout))
            {
                Assert.Equal([41L, 42L], j.RootElement.EnumerateArray().Select(e => e.GetProperty("event_id").GetInt64()));
                Assert.Equal("Ada", j.RootElement[0].GetProperty("payload").GetProperty("name").GetString());
            }
            var table = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "list", "--all-subscribers");
            Assert.Contains("billing", table.Stdout, StringComparison.Ordinal);
            Assert.Contains("the read model was down", table.Stdout, StringComparison.Ordinal);

            var show = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "show", "41");
            Assert.True(show.ExitCode == 0, show.Stderr);
            Assert.Contains("ada@example.com", show.Stdout, StringComparison.Ordinal);
            Assert.Contains("after 5 attempts", show.Stdout, StringComparison.Ordinal);

            var replay = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "replay", "41", "--by", "tester", "--json");
            Assert.True(replay.ExitCode == 0, replay.Stderr);
            using (var j = JsonDocument.Parse(replay.Stdout)) Assert.Equal([41L], j.RootElement.GetProperty("replayed").EnumerateArray().Select(e => e.GetInt64()));
            if (TestServers.Mongo is null) Assert.Equal(1, await ScalarAsync(admin, $"SELECT count(*) FROM \"{schema}\".user_profiles WHERE id = '7' AND doc->>'name' = 'Ada'"));

            // Replaying it again is a no-op: not found, exit code 5, nothing delivered.
            var again = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "replay", "41");
            Assert.Equal(5, again.ExitCode);
            Assert.Contains("already replayed or dropped): 41", again.Stderr, StringComparison.Ordinal);
            var gone = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "show", "41");
            Assert.Equal(5, gone.ExitCode);
            Assert.Contains("replayed by tester", gone.Stdout, StringComparison.Ordinal);

            var drop = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "drop", "42", "--by", "alice");
            Assert.True(drop.ExitCode == 0, drop.Stderr);
            Assert.Equal(1, await ScalarAsync(admin, $"SELECT count(*) FROM \"{schema}\".outbox_dead_letter_log WHERE event_id = 42 AND action = 'dropped' AND actor = 'alice'"));
            if (TestServers.Mongo is null) Assert.Equal(0, await ScalarAsync(admin, $"SELECT count(*) FROM \"{schema}\".user_profiles WHERE id = '8'"));
            var empty = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "list");
            Assert.Contains("no dead letters", empty.Stdout, StringComparison.Ordinal);

            // Another subscriber's dead letters need its own code to replay.
            var other = await CliRunner.RunAsync(Env, "outbox", "--schema", schema, "dead-letters", "--subscriber", "billing", "replay", "43");
            Assert.Equal(2, other.ExitCode);
            Assert.Contains("OutboxDeadLetters.ReplayAsync", other.Stderr, StringComparison.Ordinal);
            Assert.Equal(1, await ScalarAsync(admin, $"SELECT count(*) FROM \"{schema}\".outbox_dead_letters WHERE name = 'billing'"));
        }
        finally
        {
            await ExecAsync(admin, $"DROP SCHEMA \"{schema}\" CASCADE");
        }
    }

    [Theory]
    [InlineData("replay", "abc")]
    [InlineData("replay", "0")]
    [InlineData("replay")]
    [InlineData("replay", "5", "--all")]
    [InlineData("drop", "-3")]
    [InlineData("show")]
    public async Task Dead_letter_commands_refuse_bad_ids_with_exit_code_2_before_touching_anything(params string[] args)
    {
        var result = await CliRunner.RunAsync(Env, ["outbox", "dead-letters", .. args]);
        Assert.Equal(2, result.ExitCode);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.True(result.Stderr.Contains("event id", StringComparison.Ordinal) || result.Stderr.Contains("--all", StringComparison.Ordinal)
            || result.Stderr.Contains("argument", StringComparison.OrdinalIgnoreCase), result.Stderr);
    }

    [Fact]
    public async Task Dead_letters_help_teaches_the_workflow()
    {
        var help = await CliRunner.RunAsync(Env, "outbox", "dead-letters", "--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var expected in new[] { "dead-letters list", "dead-letters show 42", "replay --all", "drop 44 --by alice", "exit code 5" })
            Assert.Contains(expected, help.Stdout, StringComparison.Ordinal);
    }
}
