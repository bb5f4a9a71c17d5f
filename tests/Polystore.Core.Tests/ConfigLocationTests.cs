using Polystore.Core.Configuration;

namespace Polystore.Core.Tests;

/// <summary>
/// Where the config folder is found without <c>--dir</c> or <c>POLYSTORE_CONFIG_DIR</c> (the environment is passed
/// in, so the variable the test run sets does not decide): the CLI walks up to a running <c>./run up</c>, a hosted
/// app (<c>AddPolystore()</c>) does not.
/// </summary>
public sealed class ConfigLocationTests : IDisposable
{
    private static readonly Func<string, string?> NoEnvironment = _ => null;

    // parent/.polystore/config (with parent/.polystore/running, as ./run up leaves it) and parent/app/.
    private readonly string _parent = Directory.CreateTempSubdirectory("polystore-locate-").FullName;
    private readonly string _child;
    private readonly string _parentConfig;

    public ConfigLocationTests()
    {
        _parentConfig = Path.Combine(_parent, ConfigLocator.StateFolder, "config");
        Directory.CreateDirectory(_parentConfig);
        File.WriteAllText(Path.Combine(_parent, ConfigLocator.StateFolder, "running"), "");
        _child = Directory.CreateDirectory(Path.Combine(_parent, "app")).FullName;
    }

    public void Dispose() => Directory.Delete(_parent, recursive: true);

    [Fact]
    public void Hosted_app_in_a_child_folder_does_not_pick_up_a_parent_folders_run_up_config()
    {
        var location = ConfigLocator.LocateForHost(null, _child, NoEnvironment);

        Assert.Equal(Path.Combine(_child, "config"), location.Directory);
        Assert.Equal("./config", location.Reason);
    }

    [Fact]
    public void Hosted_app_in_the_run_up_folder_itself_uses_its_config()
    {
        var location = ConfigLocator.LocateForHost(null, _parent, NoEnvironment);

        Assert.Equal(_parentConfig, location.Directory);
        Assert.Equal("servers started by ./run up", location.Reason);
    }

    [Fact]
    public void Cli_in_a_child_folder_walks_up_to_the_running_run_up_config()
    {
        var location = ConfigLocator.Locate(null, _child, searchParents: true, NoEnvironment);

        Assert.Equal(_parentConfig, location.Directory);
        Assert.Equal("servers started by ./run up", location.Reason);
        Assert.Equal(_parentConfig, ConfigLocator.FindRunningServers(_child));
    }

    [Fact]
    public void A_stopped_run_up_is_not_used_by_either()
    {
        File.Delete(Path.Combine(_parent, ConfigLocator.StateFolder, "running"));

        Assert.Equal("./config", ConfigLocator.Locate(null, _child, searchParents: true, NoEnvironment).Reason);
        Assert.Equal("./config", ConfigLocator.LocateForHost(null, _parent, NoEnvironment).Reason);
    }

    [Fact]
    public void Dir_and_POLYSTORE_CONFIG_DIR_win_over_a_running_run_up_for_both()
    {
        var fromEnvironment = Path.Combine(_parent, "elsewhere");
        Func<string, string?> environment = name => name == "POLYSTORE_CONFIG_DIR" ? fromEnvironment : null;

        Assert.Equal(new ConfigLocation(fromEnvironment, "POLYSTORE_CONFIG_DIR"), ConfigLocator.LocateForHost(null, _parent, environment));
        Assert.Equal(new ConfigLocation(fromEnvironment, "POLYSTORE_CONFIG_DIR"), ConfigLocator.Locate(null, _child, searchParents: true, environment));
        var explicitDirectory = Path.Combine(_parent, "given");
        Assert.Equal(new ConfigLocation(explicitDirectory, "--dir"), ConfigLocator.LocateForHost(explicitDirectory, _parent, environment));
    }
}
