using MongoDB.Bson;
using MongoDB.Driver;
using Polystore.Core.Configuration;
using Polystore.Samples.Users;
using Polystore.Testing;

namespace Polystore.Mongo.Tests;

public sealed class IndexCommandTests
{
    [Fact]
    public void Seed_setup_indexes_become_one_createIndexes_command()
    {
        // Manual, createIndexes: { createIndexes: <collection>, indexes: [ { key, name, <option>... } ], writeConcern }
        var command = MongoIndexes.CreateIndexesCommand("users", UserIndexes.Declarations(), new WriteConcern("majority", TimeSpan.FromSeconds(5), journal: true));
        Assert.Equal(BsonDocument.Parse("""
            {
              "createIndexes": "users",
              "indexes": [
                { "key": { "email": 1 }, "name": "email_1", "unique": true },
                { "key": { "region": 1, "created_at": -1 }, "name": "region_1_created_at_-1" },
                { "key": { "status": 1, "last_login": -1 }, "name": "status_1_last_login_-1" },
                { "key": { "location": "2dsphere" }, "name": "location_2dsphere", "sparse": true }
              ],
              "writeConcern": { "w": "majority", "wtimeout": 5000, "j": true }
            }
            """), command);
    }

    [Fact]
    public void Ttl_hashed_and_named_indexes_render_as_in_the_manual()
    {
        IndexDeclaration[] declarations =
        [
            new("sessions", new IndexField("created_at", IndexKind.Ascending)) { ExpireAfterSeconds = 3600 },
            new("sessions", new IndexField("user_id", IndexKind.Hashed)) { Name = "by_user" },
        ];
        MongoIndexes.Validate(declarations);
        Assert.Equal(BsonDocument.Parse("""
            {
              "createIndexes": "sessions",
              "indexes": [
                { "key": { "created_at": 1 }, "name": "created_at_1", "expireAfterSeconds": 3600 },
                { "key": { "user_id": "hashed" }, "name": "by_user" }
              ]
            }
            """), MongoIndexes.CreateIndexesCommand("sessions", declarations));
        Assert.Equal(BsonDocument.Parse("""{ "dropIndexes": "sessions", "index": "by_user" }"""), MongoIndexes.DropIndexCommand("sessions", "by_user"));
    }

    [Theory]
    [InlineData("a TTL index (expire_after_seconds) must have exactly one ascending or descending field")]
    [InlineData("a hashed index cannot be unique")]
    [InlineData("key field 'a' appears twice")]
    [InlineData("key field '$a' is empty or starts with '$'")]
    [InlineData("has no key fields")]
    public void Invalid_declarations_are_refused(string expected)
    {
        IndexDeclaration bad = expected switch
        {
            _ when expected.StartsWith("a TTL", StringComparison.Ordinal) => new("c", new IndexField("a", IndexKind.Ascending), new IndexField("b", IndexKind.Ascending)) { ExpireAfterSeconds = 60 },
            _ when expected.StartsWith("a hashed", StringComparison.Ordinal) => new("c", new IndexField("a", IndexKind.Hashed)) { Unique = true },
            _ when expected.Contains("twice", StringComparison.Ordinal) => new("c", new IndexField("a", IndexKind.Ascending), new IndexField("a", IndexKind.Descending)),
            _ when expected.Contains('$', StringComparison.Ordinal) => new("c", new IndexField("$a", IndexKind.Ascending)),
            _ => new("c"),
        };
        var e = Assert.Throws<ArgumentException>(() => MongoIndexes.Validate([bad]));
        Assert.Contains("c: " + expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_same_name_or_key_declared_twice_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => MongoIndexes.Validate(
        [
            new("c", new IndexField("a", IndexKind.Ascending)),
            new("c", new IndexField("b", IndexKind.Ascending)) { Name = "a_1" },
            new("c", new IndexField("a", IndexKind.Ascending)) { Name = "other" },
        ]));
        Assert.Contains("index name 'a_1' is declared twice on 'c'", e.Message, StringComparison.Ordinal);
        Assert.Contains("""key { "a" : 1 } is declared twice on 'c'""", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>The comparison works on listIndexes output as the server returns it (manual: listIndexes, "Output").</summary>
public sealed class IndexDiffTests
{
    private static BsonDocument[] Docs(params string[] json) => [.. json.Select(BsonDocument.Parse)];

    private static readonly BsonDocument[] SeedOnServer = Docs(
        """{ "v": 2, "key": { "_id": 1 }, "name": "_id_" }""",
        """{ "v": 2, "key": { "email": 1 }, "name": "email_1", "unique": true }""",
        """{ "v": 2, "key": { "region": 1, "created_at": -1 }, "name": "region_1_created_at_-1" }""",
        """{ "v": 2, "key": { "status": 1, "last_login": -1 }, "name": "status_1_last_login_-1" }""",
        """{ "v": 2, "key": { "location": "2dsphere" }, "name": "location_2dsphere", "sparse": true, "2dsphereIndexVersion": 3 }""");

    [Fact]
    public void Server_added_fields_are_ignored_and_all_match()
    {
        var diff = MongoIndexes.Diff("users", UserIndexes.Declarations(), SeedOnServer);
        Assert.Equal(4, diff.Count);
        Assert.All(diff, d => Assert.Equal(IndexState.Matches, d.State));
    }

    [Fact]
    public void Keys_created_by_the_shell_as_doubles_match()
    {
        var existing = Docs("""{ "v": 2, "key": { "region": 1.0, "created_at": -1.0 }, "name": "region_1_created_at_-1" }""");
        var diff = MongoIndexes.Diff("users", [UserIndexes.Declarations()[1]], existing);
        Assert.Equal(IndexState.Matches, Assert.Single(diff).State);
    }

    [Fact]
    public void Missing_differing_and_undeclared_indexes_are_reported()
    {
        var existing = Docs(
            """{ "v": 2, "key": { "_id": 1 }, "name": "_id_" }""",
            """{ "v": 2, "key": { "email": 1 }, "name": "email_1" }""",
            """{ "v": 2, "key": { "created_at": -1, "region": 1 }, "name": "region_1_created_at_-1" }""",
            """{ "v": 2, "key": { "status": 1, "last_login": -1 }, "name": "status_recent" }""",
            """{ "v": 2, "key": { "nickname": 1 }, "name": "nickname_1", "partialFilterExpression": { "nickname": { "$exists": true } } }""");
        var diff = MongoIndexes.Diff("users", UserIndexes.Declarations(), existing).ToDictionary(d => d.Name);
        Assert.Equal(["email_1", "region_1_created_at_-1", "status_1_last_login_-1", "location_2dsphere", "nickname_1"], diff.Keys);
        Assert.Equal((IndexState.Differs, "unique: declared true, server false"), (diff["email_1"].State, Assert.Single(diff["email_1"].Differences)));
        Assert.Equal("""key: declared { "region" : 1, "created_at" : -1 }, server { "created_at" : -1, "region" : 1 }""", Assert.Single(diff["region_1_created_at_-1"].Differences));
        Assert.Equal("name: declared status_1_last_login_-1, server status_recent", Assert.Single(diff["status_1_last_login_-1"].Differences));
        Assert.Equal(IndexState.Missing, diff["location_2dsphere"].State);
        Assert.Null(diff["location_2dsphere"].Existing);
        Assert.Equal(IndexState.Undeclared, diff["nickname_1"].State);
        Assert.All(diff.Values, d => Assert.Equal(IndexAction.None, d.Action));
    }

    [Fact]
    public void Ttl_and_undeclared_options_are_compared()
    {
        IndexDeclaration ttl = new("sessions", new IndexField("created_at", IndexKind.Ascending)) { ExpireAfterSeconds = 3600 };
        Assert.Equal(IndexState.Matches, Assert.Single(MongoIndexes.Diff("sessions", [ttl],
            Docs("""{ "v": 2, "key": { "created_at": 1 }, "name": "created_at_1", "expireAfterSeconds": { "$numberLong": "3600" } }"""))).State);
        Assert.Equal("expireAfterSeconds: declared 3600, server 60", Assert.Single(Assert.Single(MongoIndexes.Diff("sessions", [ttl],
            Docs("""{ "v": 2, "key": { "created_at": 1 }, "name": "created_at_1", "expireAfterSeconds": 60 }"""))).Differences));
        Assert.Equal("expireAfterSeconds: declared none, server 60", Assert.Single(Assert.Single(MongoIndexes.Diff("sessions",
            [new("sessions", new IndexField("created_at", IndexKind.Ascending))],
            Docs("""{ "v": 2, "key": { "created_at": 1 }, "name": "created_at_1", "expireAfterSeconds": 60 }"""))).Differences));
        Assert.Equal("""collation: not declared, server { "locale" : "fr" }""", Assert.Single(Assert.Single(MongoIndexes.Diff("sessions",
            [new("sessions", new IndexField("created_at", IndexKind.Ascending))],
            Docs("""{ "v": 2, "key": { "created_at": 1 }, "name": "created_at_1", "collation": { "locale": "fr" } }"""))).Differences));
    }

    [Fact]
    public void Only_declarations_of_the_collection_are_compared() =>
        Assert.Empty(MongoIndexes.Diff("orders", UserIndexes.Declarations(), Docs("""{ "v": 2, "key": { "_id": 1 }, "name": "_id_" }""")));
}

public sealed class IndexYamlTests
{
    [Fact]
    public void Yaml_declares_the_seed_indexes_and_a_ttl()
    {
        var declarations = IndexYaml.Parse("""
            users:
              - keys: { email: 1 }
                unique: true
              - keys: { region: 1, created_at: -1 }
              - keys: { status: 1, last_login: -1 }
              - keys: { location: 2dsphere }
                sparse: true
            sessions:
              - keys:
                  created_at: 1
                expire_after_seconds: 3600
                name: session_ttl
            """);
        Assert.Equal(
            MongoIndexes.CreateIndexesCommand("users", UserIndexes.Declarations()),
            MongoIndexes.CreateIndexesCommand("users", declarations.Where(d => d.Collection == "users")));
        var ttl = Assert.Single(declarations, d => d.Collection == "sessions");
        Assert.Equal(BsonDocument.Parse("""{ "key": { "created_at": 1 }, "name": "session_ttl", "expireAfterSeconds": 3600 }"""), ttl.ToSpec());
        Assert.Equal(new ConfigSource("indexes.yaml", 9, 5), ttl.Source);
    }

    [Fact]
    public void Every_problem_is_reported_with_file_line_and_column()
    {
        var e = Assert.Throws<ConfigException>(() => IndexYaml.Parse("""
            users:
              - keys: { email: 2 }
                unique: yes
              - keys: { a: 1, b: 1 }
                expire_after_seconds: 60
              - key: { a: 1 }
            orders: nope
            """, "idx.yaml"));
        Assert.Equal(
        [
            "idx.yaml:2:20: users[0].keys.email: must be 1, -1, 2dsphere or hashed",
            "idx.yaml:3:13: users[0].unique: must be true or false",
            "idx.yaml:4:5: users[1]: a TTL index (expire_after_seconds) must have exactly one ascending or descending field",
            "idx.yaml:6:5: users[2].key: unknown key; expected one of keys, name, unique, sparse, expire_after_seconds",
            "idx.yaml:6:5: users[2]: keys: is missing",
            "idx.yaml:7:9: orders: expected a list of indexes",
        ], e.Errors.Select(x => x.ToString()));
    }

    [Fact]
    public void Broken_yaml_names_the_position()
    {
        var e = Assert.Throws<ConfigException>(() => IndexYaml.Parse("users:\n  - keys: { a: 1\n", "idx.yaml"));
        Assert.StartsWith("idx.yaml:", Assert.Single(e.Errors).ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(50_000)] // a 100 KB file that overflowed the stack of the tree loader
    [InlineData(40)]
    public void Deep_nesting_is_refused_at_its_position_without_a_stack_overflow(int depth)
    {
        var e = Assert.Throws<ConfigException>(() => IndexYaml.Parse("users: " + new string('[', depth) + new string(']', depth), "idx.yaml"));
        Assert.Equal("idx.yaml:1:39: nested more than 32 levels deep; an indexes file is never this deep", Assert.Single(e.Errors).ToString());
    }

    [Theory]
    [InlineData("base: &b { keys: { a: 1 } }\nusers:\n  - *b\n", "anchors and aliases")]
    [InlineData("? [a, b]\n: - keys: { x: 1 }\n", "collection names must be plain names")]
    [InlineData("users:\n  - ? [k]\n    : 1\n", "keys must be plain names")]
    [InlineData("users:\n  - keys: { ? [f] : 1 }\n", "field names must be plain names")]
    [InlineData("users: []\n---\nusers: []\n", "one YAML document")]
    public void Odd_shapes_are_errors_not_crashes(string yaml, string message)
    {
        var e = Assert.Throws<ConfigException>(() => IndexYaml.Parse(yaml, "idx.yaml"));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_reads_only_regular_files_within_the_size_limit()
    {
        var folder = Directory.CreateTempSubdirectory("polystore-idx-");
        try
        {
            var big = Path.Combine(folder.FullName, "big.yaml");
            File.WriteAllText(big, "users:\n" + string.Concat(Enumerable.Repeat("  - keys: { a: 1 }\n", 70_000)));
            Assert.Contains("larger than 1024 KiB", Assert.Throws<ConfigException>(() => IndexYaml.Load(big)).Message, StringComparison.Ordinal);
            Assert.Contains("does not exist", Assert.Throws<ConfigException>(() => IndexYaml.Load(Path.Combine(folder.FullName, "none.yaml"))).Message, StringComparison.Ordinal);
            Assert.Contains("is a directory", Assert.Throws<ConfigException>(() => IndexYaml.Load(folder.FullName)).Message, StringComparison.Ordinal);
            var fifo = Path.Combine(folder.FullName, "fifo.yaml");
            if (OperatingSystem.IsLinux() && System.Diagnostics.Process.Start("mkfifo", fifo) is { } mkfifo && mkfifo.WaitForExit(10_000) && mkfifo.ExitCode == 0)
                Assert.Contains("not a regular file", Assert.Throws<ConfigException>(() => IndexYaml.Load(fifo)).Message, StringComparison.Ordinal);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public void Sample_config_indexes_yaml_loads()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Polystore.slnx"))) root = Path.GetDirectoryName(root)!;
        var declarations = IndexYaml.Load(Path.Combine(root, "config", "indexes.yaml"));
        Assert.Contains(declarations, d => d.ExpireAfterSeconds is not null);
        Assert.Equal(4, declarations.Count(d => d.Collection == "users"));
    }
}

public sealed class IndexUsageTests
{
    [Fact]
    public void Index_stats_pipeline_is_the_manuals()
    {
        Assert.Equal([BsonDocument.Parse("""{ "$indexStats": { } }""")], IndexUsageReport.Render());
    }

    [Fact]
    public void Unused_indexes_are_listed_first()
    {
        // Manual, $indexStats output: { name, key, host, accesses: { ops, since }, spec }
        var rows = IndexUsageReport.FromStats("users",
        [
            BsonDocument.Parse("""{ "name": "_id_", "key": { "_id": 1 }, "host": "db1:27017", "accesses": { "ops": { "$numberLong": "0" }, "since": { "$date": "2026-11-26T07:00:00Z" } }, "spec": { "v": 2, "key": { "_id": 1 }, "name": "_id_" } }"""),
            BsonDocument.Parse("""{ "name": "email_1", "key": { "email": 1 }, "host": "db1:27017", "accesses": { "ops": { "$numberLong": "42" }, "since": { "$date": "2026-11-26T07:00:00Z" } } }"""),
            BsonDocument.Parse("""{ "name": "status_1_last_login_-1", "key": { "status": 1, "last_login": -1 }, "host": "db1:27017", "shard": "s0", "accesses": { "ops": { "$numberLong": "0" }, "since": { "$date": "2026-11-26T07:05:00Z" } } }"""),
        ]);
        Assert.Equal(["status_1_last_login_-1", "_id_", "email_1"], rows.Select(r => r.Name));
        Assert.Equal([true, false, false], rows.Select(r => r.Unused));
        Assert.Equal((0L, "s0", new DateTime(2026, 11, 26, 7, 5, 0, DateTimeKind.Utc)), (rows[0].Ops, rows[0].Shard, rows[0].Since));
        Assert.Equal(42, rows[2].Ops);
    }
}

public sealed class IndexServerTests
{
    [Fact]
    public async Task Ensure_creates_missing_reports_differences_and_drops_only_with_a_flag()
    {
        if (TestServers.Mongo is not { } mongo)
        {
            Assert.Skip("no MongoDB server: set POLYSTORE_TEST_MONGO=mongodb://host:port (no mongod can be installed on this machine)");
            return;
        }
        var ct = TestContext.Current.CancellationToken;
        using var store = MongoStore.Create(mongo);
        var name = TestServers.UniqueName("idx");
        try
        {
            // A pre-existing email index that is not unique, and one nobody declared.
            await store.Database.RunCommandAsync<BsonDocument>(BsonDocument.Parse($$"""{ "createIndexes": "{{name}}", "indexes": [ { "key": { "email": 1 }, "name": "email_1" }, { "key": { "nick": 1 }, "name": "nick_1" } ] }"""), cancellationToken: ct);
            var declared = UserIndexes.Declarations(name).Append(new IndexDeclaration(name, new IndexField("expires", IndexKind.Ascending)) { Name = "ttl", ExpireAfterSeconds = 60 }).ToList();

            var first = (await MongoIndexes.EnsureIndexesAsync(store.Database, declared, cancellationToken: ct)).ToDictionary(d => d.Name);
            Assert.Equal((IndexState.Differs, IndexAction.None), (first["email_1"].State, first["email_1"].Action));
            Assert.Equal((IndexState.Undeclared, IndexAction.None), (first["nick_1"].State, first["nick_1"].Action));
            Assert.All(new[] { "region_1_created_at_-1", "status_1_last_login_-1", "location_2dsphere", "ttl" }, n => Assert.Equal(IndexAction.Created, first[n].Action));

            var second = await MongoIndexes.EnsureIndexesAsync(store.Database, declared, new IndexEnsureOptions { RecreateDiffering = true, DropUndeclared = true }, ct);
            Assert.Equal(IndexAction.Recreated, second.Single(d => d.Name == "email_1").Action);
            Assert.Equal(IndexAction.Dropped, second.Single(d => d.Name == "nick_1").Action);

            var third = await MongoIndexes.EnsureIndexesAsync(store.Database, declared, cancellationToken: ct);
            Assert.All(third, d => Assert.Equal((IndexState.Matches, IndexAction.None), (d.State, d.Action)));

            await store.Collection(name).Find(new BsonDocument("email", "a@b")).ToListAsync(ct);
            var usage = await IndexUsageReport.GetAsync(store.Database, [name], ct);
            Assert.Equal(6, usage.Count);
            Assert.False(usage.Single(u => u.Name == "email_1").Unused);
            Assert.True(usage.Single(u => u.Name == "location_2dsphere").Unused);
        }
        finally
        {
            await store.Database.DropCollectionAsync(name, CancellationToken.None);
        }
    }
}

public sealed class IndexPlanTests
{
    private static readonly BsonDocument[] Existing =
    [
        BsonDocument.Parse("""{ "v": 2, "key": { "_id": 1 }, "name": "_id_" }"""),
        BsonDocument.Parse("""{ "v": 2, "key": { "email": 1 }, "name": "email_1" }"""),
        BsonDocument.Parse("""{ "v": 2, "key": { "nick": 1 }, "name": "nick_1" }"""),
        BsonDocument.Parse("""{ "v": 2, "key": { "region": 1, "created_at": -1 }, "name": "region_1_created_at_-1" }"""),
    ];

    [Fact]
    public void Without_flags_only_missing_indexes_are_created_and_nothing_is_dropped()
    {
        var (report, commands) = MongoIndexes.Plan("users", UserIndexes.Declarations(), Existing);
        Assert.Equal(BsonDocument.Parse("""
            { "createIndexes": "users", "indexes": [
                { "key": { "status": 1, "last_login": -1 }, "name": "status_1_last_login_-1" },
                { "key": { "location": "2dsphere" }, "name": "location_2dsphere", "sparse": true } ] }
            """), Assert.Single(commands));
        Assert.Equal(
            [("email_1", IndexState.Differs, IndexAction.None), ("region_1_created_at_-1", IndexState.Matches, IndexAction.None),
             ("status_1_last_login_-1", IndexState.Missing, IndexAction.Created), ("location_2dsphere", IndexState.Missing, IndexAction.Created),
             ("nick_1", IndexState.Undeclared, IndexAction.None)],
            report.Select(r => (r.Name, r.State, r.Action)));
    }

    [Fact]
    public void Flags_drop_differing_and_undeclared_indexes_before_creating()
    {
        var (report, commands) = MongoIndexes.Plan("users", UserIndexes.Declarations(), Existing,
            new IndexEnsureOptions { RecreateDiffering = true, DropUndeclared = true }, WriteConcern.WMajority);
        Assert.Equal(
        [
            BsonDocument.Parse("""{ "dropIndexes": "users", "index": "email_1", "writeConcern": { "w": "majority" } }"""),
            BsonDocument.Parse("""{ "dropIndexes": "users", "index": "nick_1", "writeConcern": { "w": "majority" } }"""),
            BsonDocument.Parse("""
                { "createIndexes": "users", "indexes": [
                    { "key": { "email": 1 }, "name": "email_1", "unique": true },
                    { "key": { "status": 1, "last_login": -1 }, "name": "status_1_last_login_-1" },
                    { "key": { "location": "2dsphere" }, "name": "location_2dsphere", "sparse": true } ],
                  "writeConcern": { "w": "majority" } }
                """),
        ], commands);
        Assert.Equal(IndexAction.Recreated, report.Single(r => r.Name == "email_1").Action);
        Assert.Equal(IndexAction.Dropped, report.Single(r => r.Name == "nick_1").Action);
    }

    [Fact]
    public void Matching_indexes_send_nothing()
    {
        var (report, commands) = MongoIndexes.Plan("users", [UserIndexes.Declarations()[1]], Existing[..1].Append(Existing[3]).ToArray());
        Assert.Empty(commands);
        Assert.Equal(IndexState.Matches, Assert.Single(report).State);
    }
}
