using System.CommandLine;
using Polystore.Bench;
using Polystore.Cli;

var root = new RootCommand("""
    polystore-bench: Polystore side by side with the known techniques and peer libraries, on the same servers,
    in one run. Run it as ./run bench postgres|redis|integration|service [--json] (it starts the private servers).

    Exit codes: 0 ok, 1 unexpected failure, 2 invalid config or usage, 3 a store is unreachable.
    """)
{
    // One line per bench.
    BenchPostgresCommand.Create(),
    BenchRedisCommand.Create(),
    BenchIntegrationCommand.Create(),
    BenchServiceCommand.Create(),
};
return await CliHost.RunAsync(root, args);
