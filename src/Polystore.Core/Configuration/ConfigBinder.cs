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
internal sealed class ConfigBinder(List<ConfigError> errors)
{
    public Dictionary<string, ConfigSource> Sources { get; } = new(StringComparer.Ordinal);

    public T Bind<T>(ConfigMap map) where T : new() => (T)BindObject(typeof(T), map, "");

    private object BindObject(Type type, ConfigMap map, string path)
    {
        var instance = Activator.CreateInstance(type)!;
        var properties = SettableProperties(type);
        foreach (var (key, node) in map.Entries)
        {
            var keyPath = Join(path, key);
            if (!properties.TryGetValue(key, out var property))
            {
                var suggestion = Suggest(key, properties.Keys);
                var known = string.Join(", ", properties.Keys);
                errors.Add(new ConfigError(node.Source, keyPath,
                    suggestion is null ? $"unknown key '{key}'; expected one of: {known}" : $"unknown key '{key}'; did you mean '{suggestion}'?"));
                continue;
            }
            if (TryConvert(property.PropertyType, node, keyPath, AllowsNull(property), out var value)) property.SetValue(instance, value);
        }
        return instance;
    }

    private bool TryConvert(Type type, ConfigNode node, string path, bool allowNull, out object? value)
    {
        Sources[path] = node.Source;
        value = null;
        var underlying = Nullable.GetUnderlyingType(type);
        if (node is ConfigScalar { Value: null })
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
                errors.Add(new ConfigError(node.Source, path, $"expected a list (lines starting with '- '), got {Shape(node)}"));
                return false;
            }
            var itemType = target.GetGenericArguments()[0];
            var result = (IList)Activator.CreateInstance(target)!;
            var ok = true;
            for (var i = 0; i < list.Items.Count; i++)
            {
                if (TryConvert(itemType, list.Items[i], $"{path}[{i}]", allowNull: false, out var item)) result.Add(item);
                else ok = false;
            }
            value = result;
            return ok;
        }
        if (IsSection(target))
        {
            if (node is not ConfigMap map)
            {
                errors.Add(new ConfigError(node.Source, path, $"expected a section of keys, got {Shape(node)}"));
                return false;
            }
            var before = errors.Count;
            value = BindObject(target, map, path);
            return errors.Count == before;
        }
        if (node is not ConfigScalar scalar)
        {
            errors.Add(new ConfigError(node.Source, path, $"expected {Describe(target)}, got {Shape(node)}"));
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
            var suggestion = Suggest(text, names.Select(n => n.Key));
            errors.Add(new ConfigError(node.Source, path,
                $"{Quoted(scalar)} is not valid here; expected one of: {string.Join(", ", names.Select(n => n.Key))}" +
                (suggestion is null ? "" : $" (did you mean '{suggestion}'?)")));
            return false;
        }
        errors.Add(new ConfigError(node.Source, path, $"expected {Describe(target)}, got {Quoted(scalar)}"));
        return false;
    }

    private static bool AllowsNull(PropertyInfo property) =>
        Nullable.GetUnderlyingType(property.PropertyType) is not null
        || !property.PropertyType.IsValueType && new NullabilityInfoContext().Create(property).WriteState == NullabilityState.Nullable;

    private static bool IsList(Type type) => type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>);

    private static bool IsSection(Type type) => type.IsClass && type != typeof(string) && !IsList(type);

    // A value drawn from an environment variable may be a secret put in the wrong key: never echo it.
    private static string Quoted(ConfigScalar scalar) =>
        scalar.FromVariable ? "a value from an environment variable (not shown)" : $"'{scalar.Value}'";

    private static string Shape(ConfigNode node) => node switch
    {
        ConfigMap => "a section of keys",
        ConfigList => "a list",
        ConfigScalar scalar => Quoted(scalar),
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
