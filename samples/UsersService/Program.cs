using Microsoft.Extensions.Options;
using Polystore.Core.Configuration;
using Polystore.Samples.UsersService;

// A bad setting is the operator's to fix: say which (the messages never quote a secret), exit 2, no stack trace.
WebApplication app;
try
{
    app = UsersServiceApp.Build(UsersServiceApp.CreateBuilder(args));
}
catch (Exception e) when (e is OptionsValidationException or ConfigException or InvalidOperationException or ArgumentException)
{
    return ConfigurationError(e);
}
try
{
    await app.RunAsync();   // validates Polystore's settings on start
    return 0;
}
catch (OptionsValidationException e)
{
    return ConfigurationError(e);
}

static int ConfigurationError(Exception e)
{
    Console.Error.WriteLine($"users service: configuration error: {e.Message}");
    return 2;
}
