using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using MongoDB.Bson;
using MongoDB.Bson.IO;
using MongoDB.Driver;
using Polystore.Core;
using Polystore.Core.Configuration;
using Polystore.Mongo;
using Polystore.Samples.Users;
using Spectre.Console;

namespace Polystore.Cli.Commands;

/// <summary>
/// <c>polystore mongo</c>: the MongoDB toolkit end to end against the configured server (indexes, bulk upsert,
/// analytics pipeline, materialized view, index usage), or, without a server, the exact commands it would send.
/// </summary>
internal static class MongoCommand
{
    private static readonly Option<string?> Indexes = new("--indexes")
    {
        Description = "indexes.yaml to ensure (default: the users sample's indexes on the demo users collection).",
        HelpName = "FILE",
    };

    private static readonly Option<string> Prefix = new("--prefix")
    {
        Description = "Prefix of the demo collections (<prefix>users, <prefix>orders, <prefix>user_region_stats).",
        DefaultValueFactory = _ => "polystore_demo_",
    };

    private static readonly Option<int> Users = new("--users")
    {
        Description = "Sample users to upsert (each with 0-3 orders).",
        DefaultValueFactory = _ => 1000,
    };

    private static readonly Option<int> BatchSize = new("--batch-size")
    {
        Description = "Upserts per unordered bulkWrite.",
        DefaultValueFactory = _ => 500,
    };

    private static readonly Option<bool> DryRun = new("--dry-run")
    {
        Description = "Print the commands as JSON without connecting, even when a server is configured.",
    };

    private const string Hint =
        "No MongoDB server is configured: put a mongodb.yaml in the config folder (connection.uri, connection.database) " +
        "or set POLYSTORE_MONGO_URL=mongodb://host:port/database, then run this again.";

    public static Command Create()
    {
        var mongo = new Command("mongo", """
            Run the MongoDB toolkit against the configured server: ensure the declared indexes (create missing,
            report differing, never drop), upsert sample users and orders with unordered bulk writes (one item
            is a deliberate duplicate email, to show the failure report), run the user analytics pipeline,
            refresh its $merge materialized view, and list indexes unused since server start ($indexStats).
            Without mongodb.yaml (or with --dry-run) it prints, as JSON, the exact pipeline and commands it would send.
            Exit code 0 ok, 2 invalid config or input, 3 server unreachable.
            """)
        {
            Indexes, Prefix, Users, BatchSize, DryRun,
        };
        mongo.SetAction(async (parse, cancellationToken) =>
        {
            var (config, location) = CommonOptions.LoadConfig(parse);
            if (config is null) return ExitCodes.InvalidConfig;
            var settings = config.Mongo;
            var prefix = parse.GetValue(Prefix)!;
            var userCount = parse.GetValue(Users);
            var batchSize = parse.GetValue(BatchSize);
            if (userCount is < 1 or > 1_000_000 || batchSize is < 1 or > MongoBulkUpsert.MaxBatchSize)
            {
                Console.Error.WriteLine($"--users must be 1..1000000 and --batch-size 1..{MongoBulkUpsert.MaxBatchSize}");
                return ExitCodes.InvalidConfig;
            }
            Demo demo;
            var indexFile = parse.GetValue(Indexes);
            try
            {
                demo = new Demo(prefix, userCount, batchSize,
                    indexFile is null ? UserIndexes.Declarations(prefix + "users") : IndexYaml.Load(indexFile));
            }
            catch (ConfigException e) when (indexFile is not null)
            {
                CommonOptions.PrintFileErrors(e, "index declarations", Path.GetFullPath(indexFile), parse.GetValue(CommonOptions.Json));
                return ExitCodes.InvalidConfig;
            }
            catch (Exception e) when (e is ArgumentException or IOException)
            {
                Console.Error.WriteLine(e.Message);
                return ExitCodes.InvalidConfig;
            }

            if (settings is null || parse.GetValue(DryRun))
            {
                Console.Out.WriteLine(Plan(settings ?? new MongoSettings(), demo).ToJson(new JsonWriterSettings { OutputMode = JsonOutputMode.RelaxedExtendedJson, Indent = true }));
                if (settings is null) Console.Error.WriteLine(Hint);
                return ExitCodes.Ok;
            }
            try
            {
                return await RunAsync(config, demo, parse.GetValue(CommonOptions.Json), cancellationToken);
            }
            catch (Exception e) when (e is MongoConnectionException or TimeoutException or MongoAuthenticationException)
            {
                // The driver appends its whole cluster view; the first sentence says what happened.
                var first = e.Message.Split(" Client view of cluster state", 2)[0].Split('\n', 2)[0];
                Console.Error.WriteLine($"MongoDB unreachable: {Redactor.Redact(first, [settings.Connection.Uri])}");
                return ExitCodes.Unreachable;
            }
        });
        return mongo;
    }

    private sealed record Demo(string Prefix, int UserCount, int BatchSize, IReadOnlyList<IndexDeclaration> Indexes)
    {
        public string UsersCollection => Prefix + "users";
        public string OrdersCollection => Prefix + "orders";
        public string View => Prefix + "user_region_stats";

        public MongoAggregation<UserRegionStats> Analytics => UserAnalyticsPipeline.Create(new() { UsersCollection = UsersCollection, OrdersCollection = OrdersCollection, ProjectEarly = true, AllowDiskUse = true });
        public MongoAggregation<UserRegionStats> Materialize => UserAnalyticsPipeline.Create(new() { UsersCollection = UsersCollection, OrdersCollection = OrdersCollection, ProjectEarly = true, AllowDiskUse = true, MergeInto = View });

        private static readonly string[] Regions = ["eu", "us", "apac"];
        private static readonly DateTime Epoch = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

        /// <summary>Deterministic sample users; the last one reuses user 1's email to show a per-item failure.</summary>
        public List<UpsertItem> SampleUsers() =>
        [
            .. Enumerable.Range(1, UserCount).Select(i => new UpsertItem(i, new BsonDocument
            {
                { "email", i == UserCount && i > 1 ? "user1@example.com" : $"user{i}@example.com" },
                { "name", $"User {i}" },
                { "status", i % 5 == 0 ? "inactive" : "active" },
                { "region", Regions[i % Regions.Length] },
                { "created_at", Epoch.AddHours(i) },
                { "last_login", Epoch.AddDays(30).AddMinutes(i) },
            })),
        ];

        public List<UpsertItem> SampleOrders() =>
        [
            .. Enumerable.Range(1, UserCount).SelectMany(u => Enumerable.Range(0, u % 4).Select(k => new UpsertItem(u * 10 + k, new BsonDocument
            {
                { "user_id", u },
                { "amount", new BsonDecimal128(10m + (u % 7) * 5m + k) },
            }))),
        ];
    }

    private static BsonDocument Plan(MongoSettings settings, Demo demo)
    {
        var users = demo.SampleUsers();
        var models = MongoBulkUpsert.BuildModels(users, 0, Math.Min(3, users.Count)).Cast<UpdateOneModel<BsonDocument>>();
        var args = new RenderArgs<BsonDocument>(MongoDB.Bson.Serialization.Serializers.BsonDocumentSerializer.Instance, MongoDB.Bson.Serialization.BsonSerializer.SerializerRegistry);
        var writeConcern = MongoDriverSettings.Build(settings).WriteConcern;
        var plan = new BsonDocument
        {
            { "database", settings.Connection.Database },
            { "indexes", new BsonArray(demo.Indexes.GroupBy(d => d.Collection).Select(g => MongoIndexes.CreateIndexesCommand(g.Key, g, writeConcern))) },
            { "bulk_upsert", new BsonDocument
                {
                    { "collection", demo.UsersCollection },
                    { "ordered", false },
                    { "items", users.Count },
                    { "batches", (users.Count + demo.BatchSize - 1) / demo.BatchSize },
                    { "first_models", new BsonArray(models.Select(m => new BsonDocument("updateOne", new BsonDocument
                        {
                            { "filter", m.Filter.Render(args) },
                            { "update", m.Update.Render(args) },
                            { "upsert", m.IsUpsert },
                        }))) },
                } },
            { "analytics", Aggregate(demo.UsersCollection, demo.Analytics) },
            { "materialized_view", Aggregate(demo.UsersCollection, demo.Materialize) },
            { "index_stats", new BsonArray(new[] { demo.UsersCollection, demo.OrdersCollection }.Select(c => new BsonDocument
                {
                    { "aggregate", c },
                    { "pipeline", new BsonArray(IndexUsageReport.Render()) },
                    { "cursor", new BsonDocument() },
                })) },
            { "transactions", "need a replica set or mongos: checked with { hello: 1 } (setName, or msg \"isdbgrid\")" },
        };
        plan.Add("sharding", settings.Sharding.Enabled
            // Orders carry the shard key (user_id), so a user's orders live on one shard.
            ? new BsonArray(MongoSharding.Commands(settings, [demo.OrdersCollection]))
            : "sharding.enabled is false in mongodb.yaml: no admin commands");
        return plan;
    }

    private static BsonDocument Aggregate(string collection, MongoAggregation<UserRegionStats> pipeline)
    {
        var command = new BsonDocument { { "aggregate", collection }, { "pipeline", new BsonArray(pipeline.Render()) } };
        if (pipeline.AggregateOptions.AllowDiskUse == true) command.Add("allowDiskUse", true);
        command.Add("cursor", new BsonDocument());
        return command;
    }

    private static async Task<int> RunAsync(PolystoreConfig config, Demo demo, bool json, CancellationToken cancellationToken)
    {
        await using var services = CliServices.Build(config);
        var store = services.GetRequiredService<MongoStore>();
        var topology = await MongoTopology.DetectAsync(store.Client, cancellationToken);
        var indexReport = await MongoIndexes.EnsureIndexesAsync(store.Database, demo.Indexes, cancellationToken: cancellationToken);
        var upsertOptions = new MongoBulkUpsertOptions { BatchSize = demo.BatchSize };
        var userResult = await MongoBulkUpsert.UpsertAsync(store.Collection(demo.UsersCollection), demo.SampleUsers(), upsertOptions, cancellationToken);
        var orderResult = await MongoBulkUpsert.UpsertAsync(store.Collection(demo.OrdersCollection), demo.SampleOrders(), upsertOptions, cancellationToken);
        var analytics = await demo.Analytics.RunAsync(store.Database, cancellationToken);
        await demo.Materialize.RunToCollectionAsync(store.Database, cancellationToken);
        var viewCount = await store.Collection(demo.View).CountDocumentsAsync(FilterDefinition<BsonDocument>.Empty, cancellationToken: cancellationToken);
        var usage = await IndexUsageReport.GetAsync(store.Database,
            demo.Indexes.Select(d => d.Collection).Append(demo.UsersCollection).Append(demo.OrdersCollection), cancellationToken);

        if (json)
        {
            CommonOptions.WriteJson(new
            {
                topology = topology.ToString(),
                transactions_available = topology != MongoTopologyKind.Standalone,
                indexes = indexReport.Select(d => new { collection = d.Collection, name = d.Name, state = d.State.ToString(), action = d.Action.ToString(), differences = d.Differences }),
                bulk_upsert = new[] { (demo.UsersCollection, userResult), (demo.OrdersCollection, orderResult) }.Select(r => new
                {
                    collection = r.Item1,
                    matched = r.Item2.Matched,
                    modified = r.Item2.Modified,
                    upserted = r.Item2.Upserted,
                    batches = r.Item2.Batches,
                    failures = r.Item2.Failures.Select(f => new { index = f.Index, id = f.Id.ToString(), code = f.Code, message = f.Message }),
                    write_concern_errors = r.Item2.WriteConcernErrors,
                }),
                analytics = analytics.Select(a => new { region = a.Region, user_count = a.UserCount, avg_orders = a.AvgOrders, total_revenue = a.TotalRevenue }),
                materialized_view = new { collection = demo.View, documents = viewCount },
                index_usage = usage.Select(u => new { collection = u.Collection, name = u.Name, ops = u.Ops, since = u.Since, host = u.Host, shard = u.Shard, unused = u.Unused }),
            });
            return ExitCodes.Ok;
        }

        AnsiConsole.MarkupLine($"[bold]MongoDB[/] {Markup.Escape(MongoTopologyEndpoint(store))}: {topology}; transactions {(topology == MongoTopologyKind.Standalone ? "[yellow]unavailable (standalone)[/]" : "[green]available[/]")}");
        var indexes = new Table().Border(TableBorder.Rounded).Title("Indexes (never dropped without a flag)").AddColumns("Collection", "Index", "State", "Action", "Differences");
        foreach (var d in indexReport)
            indexes.AddRow(Markup.Escape(d.Collection), Markup.Escape(d.Name), d.State.ToString(), d.Action.ToString(), Markup.Escape(string.Join("; ", d.Differences)));
        AnsiConsole.Write(indexes);

        var bulk = new Table().Border(TableBorder.Rounded).Title("Unordered bulk upserts").AddColumns("Collection", "Matched", "Modified", "Upserted", "Batches", "Failed");
        foreach (var (name, r) in new[] { (demo.UsersCollection, userResult), (demo.OrdersCollection, orderResult) })
            bulk.AddRow(Markup.Escape(name), $"{r.Matched}", $"{r.Modified}", $"{r.Upserted}", $"{r.Batches}", r.Failures.Count == 0 ? "0" : $"[red]{r.Failures.Count}[/]");
        AnsiConsole.Write(bulk);
        foreach (var f in userResult.Failures.Concat(orderResult.Failures))
            AnsiConsole.MarkupLine($"  [red]failed[/] item {f.Index} (_id {Markup.Escape(f.Id.ToString() ?? "")}): code {f.Code}: {Markup.Escape(f.Message)}");

        var rows = new Table().Border(TableBorder.Rounded).Title("User analytics by region").AddColumns("Region", "Users", "Avg orders", "Revenue");
        foreach (var a in analytics) rows.AddRow(Markup.Escape(a.Region ?? "(none)"), $"{a.UserCount}", $"{a.AvgOrders:0.00}", $"{a.TotalRevenue:0.00}");
        AnsiConsole.Write(rows);
        AnsiConsole.MarkupLine($"Materialized view [bold]{Markup.Escape(demo.View)}[/] refreshed with $merge: {viewCount} documents.");

        var usageTable = new Table().Border(TableBorder.Rounded).Title("Index usage ($indexStats)").AddColumns("Collection", "Index", "Ops", "Since", "Unused");
        foreach (var u in usage)
            usageTable.AddRow(Markup.Escape(u.Collection), Markup.Escape(u.Name), $"{u.Ops}", $"{u.Since:u}", u.Unused ? "[yellow]unused[/]" : "");
        AnsiConsole.Write(usageTable);
        return ExitCodes.Ok;
    }

    private static string MongoTopologyEndpoint(MongoStore store) => string.Join(",", store.Client.Settings.Servers.Select(s => $"{s.Host}:{s.Port}"));
}
