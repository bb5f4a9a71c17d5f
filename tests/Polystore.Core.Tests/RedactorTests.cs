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

    // What a logger or span exporter reads of an exception (Message, StackTrace, ToString, the inner chain) carries no secret.
    [Fact]
    public void An_exception_whose_text_holds_a_secret_is_logged_as_a_redacted_stand_in()
    {
        var thrown = Thrown(() =>
        {
            try { _ = new Uri("http://[bad"); }
            catch (UriFormatException e) { throw new IOException("cache at redis://app:inner5ecret@cache:6379 refused", e); }
        }, "connecting with Host=db;Password=outer5ecret;Username=app failed");

        var logged = Redactor.Redact(thrown, ["known5ecret"]);

        Assert.NotSame(thrown, logged);
        Assert.Equal("connecting with Host=db;Password=***;Username=app failed", logged.Message);
        var text = logged.ToString();
        Assert.StartsWith("System.InvalidOperationException: connecting with Host=db;Password=***", text, StringComparison.Ordinal);
        Assert.Contains("redis://app:***@cache:6379", text, StringComparison.Ordinal);
        Assert.Contains(nameof(Thrown), logged.StackTrace!, StringComparison.Ordinal);
        Assert.Equal("cache at redis://app:***@cache:6379 refused", logged.InnerException!.Message);
        Assert.IsType<UriFormatException>(logged.InnerException.InnerException); // no secret in it: passed as it is
        foreach (var secret in new[] { "inner5ecret", "outer5ecret" })
            Assert.DoesNotContain(secret, text + logged.StackTrace + logged.InnerException, StringComparison.Ordinal);
    }

    [Fact]
    public void An_exception_without_a_secret_is_logged_as_it_is_and_a_known_secret_is_found_anywhere()
    {
        var plain = Thrown(() => { }, "connection refused (127.0.0.1:5432)");
        Assert.Same(plain, Redactor.Redact(plain));

        var known = Thrown(() => { }, "auth failed with hunter22 for app");
        var logged = Redactor.Redact(known, ["hunter22"]);
        Assert.Equal("auth failed with *** for app", logged.Message);
        Assert.DoesNotContain("hunter22", logged.ToString(), StringComparison.Ordinal);
        Assert.Same(logged, Redactor.Redact(logged, ["hunter22"]));
    }

    // A thrown (not just constructed) exception, so that it has a stack trace; `inner` runs in the catch that wraps it.
    private static InvalidOperationException Thrown(Action inner, string message)
    {
        try
        {
            try { inner(); }
            catch (Exception e) { throw new InvalidOperationException(message, e); }
            throw new InvalidOperationException(message);
        }
        catch (InvalidOperationException e) { return e; }
    }
}
