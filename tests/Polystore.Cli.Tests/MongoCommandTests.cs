using System.Text.Json;
using MongoDB.Bson;
using Polystore.Testing;

namespace Polystore.Cli.Tests;

public sealed class MongoCommandTests
{
    [Fact]
    public async Task Without_a_server_it_prints_the_exact_commands_and_how_to_configure_one()
    {
        var args = new List<string> { "mongo", "--dir", TestServers.ConfigDirectory, "--users", "5", "--batch-size", "2", "--prefix", "t_" };
        if (TestServers.Mongo is not null) args.Add("--dry-run");
        var result = await CliRunner.RunAsync(null, [.. args]);
        Assert.Equal(0, result.ExitCode);
        var plan = BsonDocument.Parse(result.Stdout);
        Assert.Equal(BsonDocument.Parse("""{ "$match": { "status": "active" } }"""), plan["analytics"]["pipeline"][0]);
        Assert.Equal(BsonDocument.Parse("""{ "$sort": { "total_revenue": -1 } }"""), plan["analytics"]["pipeline"].AsBsonArray.Last());
        Assert.True(plan["analytics"]["allowDiskUse"].AsBoolean);
        Assert.Equal(BsonDocument.Parse("""{ "$merge": { "into": "t_user_region_stats", "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert" } }"""), plan["materialized_view"]["pipeline"].AsBsonArray.Last());
        Assert.Equal("t_users", plan["indexes"][0]["createIndexes"].AsString);
        Assert.Equal(3, plan["bulk_upsert"]["batches"].AsInt32);
        Assert.Equal(BsonDocument.Parse("""{ "_id": 1 }"""), plan["bulk_upsert"]["first_models"][0]["updateOne"]["filter"]);
        Assert.Equal(BsonDocument.Parse("""{ "$indexStats": { } }"""), plan["index_stats"][0]["pipeline"][0]);
        if (TestServers.Mongo is null) Assert.Contains("POLYSTORE_MONGO_URL", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_server_exits_3_without_its_password()
    {
        using var folder = TempFolder.Create("polystore-cli-");
        var dir = folder.FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "mongodb.yaml"), "connection:\n  uri: mongodb://app:s3cret-pw@127.0.0.1:1/?connectTimeoutMS=500\n  database: x\n", TestContext.Current.CancellationToken);
        var result = await CliRunner.RunAsync(null, "mongo", "--dir", dir);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("MongoDB unreachable", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-pw", result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_indexes_yaml_exits_2_with_its_position()
    {
        using var folder = TempFolder.Create("polystore-cli-");
        var dir = folder.FullName;
        var file = Path.Combine(dir, "indexes.yaml");
        await File.WriteAllTextAsync(file, "users:\n  - keys: { email: 2 }\n", TestContext.Current.CancellationToken);
        var result = await CliRunner.RunAsync(null, "mongo", "--dir", TestServers.ConfigDirectory, "--indexes", file, "--dry-run");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("indexes.yaml:2:20: users[0].keys.email: must be 1, -1, 2dsphere or hashed", result.Stderr, StringComparison.Ordinal);
        Assert.Contains($"Invalid index declarations in {file}: 1 problem", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Invalid configuration", result.Stderr, StringComparison.Ordinal); // the config folder is fine

        var json = await CliRunner.RunAsync(null, "mongo", "--dir", TestServers.ConfigDirectory, "--indexes", file, "--dry-run", "--json");
        Assert.Equal(2, json.ExitCode);
        using var doc = JsonDocument.Parse(json.Stdout);
        Assert.Equal(file, doc.RootElement.GetProperty("file").GetString());
        Assert.Equal("users[0].keys.email", doc.RootElement.GetProperty("errors")[0].GetProperty("key").GetString());
    }

    [Fact]
    public async Task With_a_server_it_runs_the_toolkit_end_to_end()
    {
        if (TestServers.Mongo is null)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        var prefix = TestServers.UniqueName("cli") + "_";
        var result = await CliRunner.RunAsync(null, "mongo", "--dir", TestServers.ConfigDirectory, "--users", "50", "--batch-size", "20", "--prefix", prefix, "--json");
        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var users = json.RootElement.GetProperty("bulk_upsert")[0];
        Assert.Equal(49, users.GetProperty("upserted").GetInt64());
        Assert.Equal(49, users.GetProperty("failures")[0].GetProperty("index").GetInt32());
        Assert.Equal(11000, users.GetProperty("failures")[0].GetProperty("code").GetInt32());
        Assert.Equal(3, json.RootElement.GetProperty("analytics").GetArrayLength());
    }
}
