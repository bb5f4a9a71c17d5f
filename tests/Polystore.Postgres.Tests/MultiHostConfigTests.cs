using Npgsql;
using Polystore.Core.Configuration;

namespace Polystore.Postgres.Tests;

/// <summary><c>connection.hosts</c> and <c>connection.target_session_attributes</c>: a high-availability group's servers.</summary>
public sealed class MultiHostConfigTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "polystore-multihost-" + Guid.NewGuid().ToString("N"));

    public MultiHostConfigTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private PolystoreConfig Load(string yaml)
    {
        File.WriteAllText(Path.Combine(_dir, "postgresql.yaml"), yaml.ReplaceLineEndings("\n"));
        return PolystoreConfig.Load(_dir, new Dictionary<string, string>());
    }

    [Fact]
    public void The_hosts_of_a_multi_host_uri_become_npgsqls_host_list_and_the_target_session_the_primarys()
    {
        var settings = Load("""
            connection:
              hosts:
                - 10.0.0.1:6001
                - "[fd00::2]:6002"
                - db3
              port: 6003
              target_session_attributes: read-write
              database: app
            """).Postgres!;

        var b = PostgresDriverSettings.Build(settings);
        Assert.Equal("10.0.0.1:6001,[fd00::2]:6002,db3:6003", b.Host);
        Assert.Null(b.TargetSessionAttributes);   // Npgsql refuses it on a multi-host data source: it goes on the wrapper
        Assert.Equal(PostgresDriverSettings.HostsRecheckSeconds, b.HostRecheckSeconds);
        Assert.Equal(TargetSessionAttributes.ReadWrite, PostgresDriverSettings.TargetSession(settings));
        Assert.True(PostgresDriverSettings.IsMultiHost(settings));
    }

    [Fact]
    public void Without_target_session_attributes_writes_go_to_the_primary_and_reads_of_a_group_to_a_standby()
    {
        var settings = Load("connection:\n  hosts: [a:1, b:2]\n").Postgres!;
        Assert.Equal(TargetSessionAttributes.Primary, PostgresDriverSettings.TargetSession(settings));
        using var sources = PostgresDataSources.Create(settings);
        Assert.NotSame(sources.Primary, sources.Reads);   // HostsGroupReadTests checks where each goes

        // One server has no standby to read from: reads share the writes' connections.
        using var single = PostgresDataSources.Create(Load("connection:\n  hosts: [a:1]\n  target_session_attributes: read-write\n").Postgres!);
        Assert.Same(single.Primary, single.Reads);
    }

    [Theory]
    [InlineData("any", TargetSessionAttributes.Any)]
    [InlineData("primary", TargetSessionAttributes.Primary)]
    [InlineData("standby", TargetSessionAttributes.Standby)]
    [InlineData("prefer-primary", TargetSessionAttributes.PreferPrimary)]
    [InlineData("prefer-standby", TargetSessionAttributes.PreferStandby)]
    [InlineData("read-only", TargetSessionAttributes.ReadOnly)]
    public void Every_libpq_target_session_maps_to_npgsqls(string yaml, TargetSessionAttributes expected)
    {
        var settings = Load($"connection:\n  hosts: [a:1, b:2]\n  target_session_attributes: {yaml}\n").Postgres!;
        Assert.Equal(expected, PostgresDriverSettings.TargetSession(settings));
    }

    [Fact]
    public void Bad_entries_are_errors_naming_their_key()
    {
        var e = Assert.Throws<ConfigException>(() => Load("""
            connection:
              hosts:
                - a:5432
                - b:99999
                - "c,d:5432"
                - fd00::1:5432
                - ""
            """));
        var messages = e.Errors.Select(x => $"{x.KeyPath}: {x.Message}").ToList();
        Assert.Contains(messages, m => m.StartsWith("connection.hosts[1]:", StringComparison.Ordinal) && m.Contains("not a TCP port", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("connection.hosts[2]:", StringComparison.Ordinal) && m.Contains("not one host", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("connection.hosts[3]:", StringComparison.Ordinal) && m.Contains("[address]:port", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("connection.hosts[4]:", StringComparison.Ordinal));
        Assert.DoesNotContain(messages, m => m.StartsWith("connection.hosts[0]", StringComparison.Ordinal));
    }

    [Fact]
    public void An_unknown_target_session_is_an_error_listing_libpqs_spellings()
    {
        var e = Assert.Throws<ConfigException>(() => Load("connection:\n  hosts: [a:1, b:2]\n  target_session_attributes: readwrite\n"));
        var error = Assert.Single(e.Errors);
        Assert.Equal("connection.target_session_attributes", error.KeyPath);
        Assert.Contains("read-write", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Target_session_attributes_without_hosts_is_an_error()
    {
        var e = Assert.Throws<ConfigException>(() => Load("connection:\n  host: db\n  target_session_attributes: primary\n"));
        var error = Assert.Single(e.Errors);
        Assert.Equal("connection.target_session_attributes", error.KeyPath);
        Assert.Contains("connection.hosts", error.Message, StringComparison.Ordinal);
    }
}
