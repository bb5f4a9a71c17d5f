using Polystore.Samples.UsersService;

var app = UsersServiceApp.Build(UsersServiceApp.CreateBuilder(args));
await app.RunAsync();
