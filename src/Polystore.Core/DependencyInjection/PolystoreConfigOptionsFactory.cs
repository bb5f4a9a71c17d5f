using Microsoft.Extensions.Options;
using Polystore.Core.Configuration;

namespace Polystore;

/// <summary>
/// Builds <see cref="IOptions{PolystoreConfig}"/> with Polystore's own loader (so a configuration error reads the same
/// from YAML, appsettings.json or environment variables), then runs the registered validations. A configuration error
/// surfaces as an <see cref="OptionsValidationException"/> whose failures are the loader's messages, at start-up when
/// the host validates on start.
/// </summary>
internal sealed class PolystoreConfigOptionsFactory(Func<PolystoreConfig> load, IEnumerable<IValidateOptions<PolystoreConfig>> validations) : IOptionsFactory<PolystoreConfig>
{
    // IOptions and IOptionsMonitor (which ValidateOnStart uses) keep separate caches: load, bind and validate once for both.
    private readonly Lazy<PolystoreConfig> _config = new(() => Build(load, validations));

    public PolystoreConfig Create(string name) => _config.Value;

    private static PolystoreConfig Build(Func<PolystoreConfig> load, IEnumerable<IValidateOptions<PolystoreConfig>> validations)
    {
        var name = Options.DefaultName;
        PolystoreConfig config;
        try
        {
            config = load();
        }
        catch (ConfigException e)
        {
            throw new OptionsValidationException(name, typeof(PolystoreConfig), e.Errors.Select(error => error.ToString()));
        }
        var failures = validations.Select(v => v.Validate(name, config)).Where(r => r.Failed).SelectMany(r => r.Failures ?? []).ToList();
        if (failures.Count > 0) throw new OptionsValidationException(name, typeof(PolystoreConfig), failures);
        return config;
    }
}
