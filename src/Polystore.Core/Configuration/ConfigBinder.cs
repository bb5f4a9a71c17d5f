using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text;

namespace Polystore.Core.Configuration;

/// <summary>
/// Binds a <see cref="ConfigMap"/> onto a settings class. Keys are the snake_case of property names
/// (or <see cref="ConfigNameAttribute"/>). Every problem is collected, never thrown, and each
/// bound value's source is recorded by key path for error messages and <c>config check</c>.
/// </summary>
/// <param name="errors">Where problems go.</param>
/// <param name="lenient">
/// For an <c>IConfiguration</c>, whose keys are case-insensitive and usually PascalCase: keys match whatever their
/// case and underscores (<c>max_size</c>, <c>MaxSize</c>), and enum values also match their C# names
/// (<c>VerifyFull</c> as well as <c>verify-full</c>). The YAML folder keeps its one spelling.
/// </param>
internal sealed class ConfigBinder(List<ConfigError> errors, bool lenient = false)
{
    public Dictionary<string, ConfigSource> Sources { get; } = new(StringComparer.Ordinal);

    public T Bind<T>(ConfigMap map) where T : new() => (T)BindObject(typeof(T), map, "", secret: false);

    private object BindObject(Type type, ConfigMap map, string path, bool secret)
    {
        var instance = Activator.CreateInstance(type)!;
        var properties = SettableProperties(type);
        foreach (var (key, node) in map.Entries)
        {
            var property = lenient ? FindLenient(properties, key) : properties.GetValueOrDefault(key);
            if (property is null)
            {
                errors.Add(new ConfigError(node.Source, Join(path, key), UnknownKey(key, properties)));
                continue;
            }
            // Known keys are reported and recorded by their one spelling, whatever the source wrote.
            var keyPath = Join(path, KeyOf(property));
            var isSecret = secret || property.GetCustomAttribute<SecretAttribute>() is not null;
            if (TryConvert(property.PropertyType, node, keyPath, AllowsNull(property), isSecret, out var value)) property.SetValue(instance, value);
        }
        return instance;
    }

    private string UnknownKey(string key, Dictionary<string, PropertyInfo> properties)
    {
        if (!lenient)
        {
            var suggestion = Suggest(key, properties.Keys);
            return suggestion is null
                ? $"unknown key '{key}'; expected one of: {string.Join(", ", properties.Keys)}"
                : $"unknown key '{key}'; did you mean '{suggestion}'?";
        }
        // Answer in the spelling the source used: MaxSzie gets MaxSize, max_szie gets max_size.
        var pascal = key.Any(char.IsUpper) && !key.Contains('_', StringComparison.Ordinal);
        string Spell(PropertyInfo p) => pascal ? p.Name : KeyOf(p);
        var byNormalized = properties.Values.ToDictionary(p => NormalizeKey(KeyOf(p)), StringComparer.Ordinal);
        var best = Suggest(NormalizeKey(key), byNormalized.Keys);
        return best is null
            ? $"unknown key '{key}'; expected one of: {string.Join(", ", properties.Values.Select(Spell))}"
            : $"unknown key '{key}'; did you mean '{Spell(byNormalized[best])}'?";
    }

    private static PropertyInfo? FindLenient(Dictionary<string, PropertyInfo> properties, string key)
    {
        var normalized = NormalizeKey(key);
        foreach (var property in properties.Values)
            if (NormalizeKey(KeyOf(property)) == normalized || NormalizeKey(property.Name) == normalized) return property;
        return null;
    }

    /// <summary>A key as compared by a lenient binder: lower case, without underscores (<c>MaxSize</c> and <c>max_size</c> are one key).</summary>
    internal static string NormalizeKey(string key) => key.Replace("_", "", StringComparison.Ordinal).ToLowerInvariant();

    private bool TryConvert(Type type, ConfigNode node, string path, bool allowNull, bool secret, out object? value)
    {
        Sources[path] = node.Source;
        value = null;
        var underlying = Nullable.GetUnderlyingType(type);
        // An IConfiguration holds an empty JSON array as "": that is an empty list, not a value.
        if (node is ConfigScalar { Value: null } || lenient && node is ConfigScalar { Value: "" } && (IsSection(type) || IsList(type)))
        {
            // An empty section or list ("pool:" with nothing under it) keeps its defaults.
            if (IsSection(type) || IsList(type)) { value = Activator.CreateInstance(type); return true; }
            if (allowNull) return true;
            errors.Add(new ConfigError(node.Source, path, $"a value is required here ({Describe(underlying ?? type)})"));
            return false;
        }
        var target = underlying ?? type;
        if (IsList(target))
        {
            if (node is not ConfigList list)
            {
                errors.Add(new ConfigError(node.Source, path, $"expected a list (lines starting with '- '), got {Shape(node, secret)}"));
                return false;
            }
            var itemType = target.GetGenericArguments()[0];
            var result = (IList)Activator.CreateInstance(target)!;
            var ok = true;
            for (var i = 0; i < list.Items.Count; i++)
            {
                if (TryConvert(itemType, list.Items[i], $"{path}[{i}]", allowNull: false, secret, out var item)) result.Add(item);
                else ok = false;
            }
            value = result;
            return ok;
        }
        if (IsSection(target))
        {
            if (node is not ConfigMap map)
            {
                errors.Add(new ConfigError(node.Source, path, $"expected a section of keys, got {Shape(node, secret)}"));
                return false;
            }
            var before = errors.Count;
            value = BindObject(target, map, path, secret);
            return errors.Count == before;
        }
        if (node is not ConfigScalar scalar)
        {
            errors.Add(new ConfigError(node.Source, path, $"expected {Describe(target)}, got {Shape(node, secret)}"));
            return false;
        }
        var text = scalar.Value!.Trim();
        if (target == typeof(string)) { value = scalar.Value; return true; }
        if (target == typeof(int))
        {
            if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number)) { value = number; return true; }
        }
        else if (target == typeof(double))
        {
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number)) { value = number; return true; }
        }
        else if (target == typeof(bool))
        {
            switch (text.ToLowerInvariant())
            {
                case "true" or "yes" or "on": value = true; return true;
                case "false" or "no" or "off": value = false; return true;
            }
        }
        else if (target.IsEnum)
        {
            var names = EnumNames(target);
            var match = names.FirstOrDefault(n => string.Equals(n.Key, text, StringComparison.OrdinalIgnoreCase));
            if (match.Key is not null) { value = match.Value; return true; }
            if (lenient && target.GetFields(BindingFlags.Public | BindingFlags.Static).FirstOrDefault(f => string.Equals(f.Name, text, StringComparison.OrdinalIgnoreCase)) is { } field)
            {
                value = field.GetValue(null);
                return true;
            }
            var suggestion = Suggest(text, names.Select(n => n.Key));
            errors.Add(new ConfigError(node.Source, path,
                $"{Quoted(scalar, secret)} is not valid here; expected one of: {string.Join(", ", names.Select(n => n.Key))}" +
                (suggestion is null ? "" : $" (did you mean '{suggestion}'?)")));
            return false;
        }
        errors.Add(new ConfigError(node.Source, path, $"expected {Describe(target)}, got {Quoted(scalar, secret)}"));
        return false;
    }

    private static bool AllowsNull(PropertyInfo property) =>
        Nullable.GetUnderlyingType(property.PropertyType) is not null
        || !property.PropertyType.IsValueType && new NullabilityInfoContext().Create(property).WriteState == NullabilityState.Nullable;

    private static bool IsList(Type type) => type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>);

    private static bool IsSection(Type type) => type.IsClass && type != typeof(string) && !IsList(type);

    // A value drawn from an environment variable may be a secret put in the wrong key, and a secret key's value is a
    // secret however malformed: never echo either.
    private static string Quoted(ConfigScalar scalar, bool secret) =>
        secret ? "a secret value (not shown)"
        : scalar.FromVariable ? "a value from an environment variable (not shown)"
        : $"'{scalar.Value}'";

    private static string Shape(ConfigNode node, bool secret) => node switch
    {
        ConfigMap => "a section of keys",
        ConfigList => "a list",
        ConfigScalar scalar => Quoted(scalar, secret),
        _ => "something else",
    };

    private static string Describe(Type type) =>
        type == typeof(int) ? "a whole number"
        : type == typeof(double) ? "a number"
        : type == typeof(bool) ? "true or false"
        : type.IsEnum ? "one of: " + string.Join(", ", EnumNames(type).Select(n => n.Key))
        : type == typeof(string) ? "text"
        : "a value";

    internal static string Join(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    internal static Dictionary<string, PropertyInfo> SettableProperties(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite)
            .ToDictionary(KeyOf, StringComparer.Ordinal);

    internal static string KeyOf(PropertyInfo property) =>
        property.GetCustomAttribute<ConfigNameAttribute>()?.Name ?? SnakeCase(property.Name);

    internal static List<KeyValuePair<string, object>> EnumNames(Type type) =>
        type.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => new KeyValuePair<string, object>(f.GetCustomAttribute<ConfigNameAttribute>()?.Name ?? SnakeCase(f.Name), f.GetValue(null)!))
            .ToList();

    internal static string EnumName(object value) =>
        EnumNames(value.GetType()).First(n => Equals(n.Value, value)).Key;

    internal static string SnakeCase(string name)
    {
        var builder = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0) builder.Append('_');
            builder.Append(char.ToLowerInvariant(name[i]));
        }
        return builder.ToString();
    }

    /// <summary>The closest candidate within a small edit distance, for "did you mean".</summary>
    internal static string? Suggest(string input, IEnumerable<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = Distance(input.ToLowerInvariant(), candidate.ToLowerInvariant());
            if (distance < bestDistance) (best, bestDistance) = (candidate, distance);
        }
        return best is not null && bestDistance <= Math.Max(2, best.Length / 3) ? best : null;
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
