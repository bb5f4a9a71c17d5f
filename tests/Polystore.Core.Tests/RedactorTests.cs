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

    // A key is a whole name: one ending in "password" is a secret's key, a word that merely ends in "pass" is not.
    [Theory]
    [InlineData("bypass=foo", "bypass=foo")]
    [InlineData("compass=north;Password=s3cret", "compass=north;Password=***")]
    [InlineData("mode=bypass, pwd=s3cret", "mode=bypass, pwd=***")]
    [InlineData("sentinelPassword=s3cret,ssl=true", "sentinelPassword=***,ssl=true")]
    [InlineData("ssl_password=s3cret", "ssl_password=***")]
    [InlineData("Host=x;SSL Password=s3cret", "Host=x;SSL Password=***")]
    [InlineData("db_pass=s3cret db-passwd=s3cret", "db_pass=*** db-passwd=***")]
    [InlineData("PASS = s3cret", "PASS=***")]
    [InlineData("requirepass=s3cret", "requirepass=***")]
    [InlineData("passwordless=true", "passwordless=true")]
    public void Only_whole_password_keys_are_masked(string input, string expected) => Assert.Equal(expected, Redactor.RedactConnectionString(input));

    // A long run of name characters (a base64 blob, a hex dump in an exception) is scanned in linear time.
    [Fact]
    public void A_long_run_of_name_characters_is_no_slower_than_linear()
    {
        var text = string.Concat(Enumerable.Repeat("a_", 200_000)) + "pass=s3cret";
        Assert.EndsWith("pass=***", Redactor.RedactConnectionString(text));
    }
}
