using System.CommandLine;
using Polystore.Cli;
using Polystore.Cli.Commands;

var root = new RootCommand("""
    polystore: one tool for applications that keep their data in PostgreSQL, MongoDB and Redis.

    Every command reads the same config folder (see --dir) holding postgresql.yaml, mongodb.yaml
    and redis.yaml, or the stores' POLYSTORE_POSTGRES_URL, POLYSTORE_REDIS_URL and POLYSTORE_MONGO_URL.

    Exit codes: 0 ok, 1 unexpected failure, 2 invalid config or usage, 3 a store is unreachable,
    4 doctor found a critical problem, 5 what was named does not exist.
    """)
{
    ConfigCommand.Create(),
    PingCommand.Create(),
    MongoCommand.Create(),
    DoctorCommand.Create(),
    OutboxCommand.Create(),
    CqrsCommand.Create(),
    PostgresCommand.Create(),
    DemoCommand.Create(DemoRedisCommand.Create()),
};
return await CliHost.RunAsync(root, args);
