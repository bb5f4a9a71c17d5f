using System.CommandLine;
using Polystore.Cli;
using Polystore.Cli.Commands;

CommonOptions.ConfigureConsole();
var root = new RootCommand("""
    polystore: one tool for applications that keep their data in PostgreSQL, MongoDB and Redis.

    Every command reads the same config folder (see --dir) holding postgresql.yaml, mongodb.yaml
    and redis.yaml. After './run up', commands find the private servers' config by themselves.

    Exit codes: 0 ok, 1 unexpected failure, 2 invalid config or usage, 3 a store is unreachable,
    4 doctor found a critical problem, 5 what was named does not exist.
    """)
{
    CommonOptions.Dir,
    CommonOptions.Json,
    CommonOptions.Verbose,
    ConfigCommand.Create(),
    PingCommand.Create(),
    MongoCommand.Create(),
    DoctorCommand.Create(),
    OutboxCommand.Create(),
    CqrsCommand.Create(),
    BenchCommand.Create(BenchPostgresCommand.Create(), BenchRedisCommand.Create(), BenchIntegrationCommand.Create()),
    PostgresCommand.Create(),
    DemoCommand.Create(DemoRedisCommand.Create()),
};

ParseResult parse;
try
{
    parse = root.Parse(args);
}
catch (Exception e)
{
    // A validator's own bug must not print a stack trace either.
    return CliFailure.Report(e, args.Contains("--verbose"), []);
}
if (parse.Errors.Count > 0)
{
    foreach (var error in parse.Errors) Console.Error.WriteLine(error.Message);
    Console.Error.WriteLine("Run 'polystore --help' for usage.");
    return ExitCodes.InvalidConfig;
}
try
{
    // Exceptions come here, not to System.CommandLine's handler, which prints the stack trace first.
    return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("polystore: cancelled");
    return 130;
}
catch (Exception e)
{
    return CliFailure.Report(e, parse.GetValue(CommonOptions.Verbose), CommonOptions.LoadedSecrets);
}
