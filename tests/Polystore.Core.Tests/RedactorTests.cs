namespace Polystore.Core.Tests;

public sealed class RedactorTests
{
    [Theory]
    [InlineData("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0")]
    [InlineData("failed: mongodb://admin:s3cret@a:1,b:2/db", "failed: mongodb://admin:***@a:1,b:2/db")]
    [InlineData("Host=x;Password=s3cret;Username=u", "Host=x;Password=***;Username=u")]
    [InlineData("host:6379,password=s3cret,ssl=true", "host:6379,password=***,ssl=true")]
    [InlineData("no secrets here", "no secrets here")]
    public void Secrets_are_masked(string input, string expected) => Assert.Equal(expected, Redactor.RedactConnectionString(input));

    [Fact]
    public void Known_secret_values_are_masked_anywhere() =>
        Assert.Equal("auth failed for *** on host", Redactor.Redact("auth failed for hunter2 on host", ["hunter2", null, ""]));
}
