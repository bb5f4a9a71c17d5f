using Polystore.Bench.ServiceHost;

// The users service for the HTTP load benchmark: Bench:ProfileCache and Bench:Limiter pick what it runs with.
try
{
    await ServiceHostApp.Build(ServiceHostApp.CreateBuilder(args)).RunAsync();
    return 0;
}
catch (InvalidOperationException e)
{
    Console.Error.WriteLine($"bench service host: {e.Message}");
    return 2;
}
