using System.Text;

namespace Polystore.Core.Configuration;

/// <summary>
/// Expands <c>${VAR}</c> and <c>${VAR:-default}</c> in scalar values, as a shell would:
/// the default applies when the variable is unset or empty. <c>$${</c> is a literal <c>${</c>.
/// </summary>
internal static class VariableSubstitution
{
    public static void Apply(ConfigNode node, string path, Func<string, string?> lookup, List<ConfigError> errors)
    {
        switch (node)
        {
            case ConfigScalar { Value: { } text } scalar when text.Contains('$', StringComparison.Ordinal):
                scalar.Value = Expand(text, scalar.Source, path, lookup, errors);
                break;
            case ConfigMap map:
                foreach (var (key, child) in map.Entries) Apply(child, path.Length == 0 ? key : $"{path}.{key}", lookup, errors);
                break;
            case ConfigList list:
                for (var i = 0; i < list.Items.Count; i++) Apply(list.Items[i], $"{path}[{i}]", lookup, errors);
                break;
        }
    }

    internal static string Expand(string text, ConfigSource source, string path, Func<string, string?> lookup, List<ConfigError> errors)
    {
        var result = new StringBuilder(text.Length);
        var i = 0;
        while (i < text.Length)
        {
            if (text[i] == '$' && i + 2 < text.Length && text[i + 1] == '$' && text[i + 2] == '{')
            {
                result.Append("${");
                i += 3;
                continue;
            }
            if (text[i] != '$' || i + 1 >= text.Length || text[i + 1] != '{')
            {
                result.Append(text[i++]);
                continue;
            }
            var close = text.IndexOf('}', i + 2);
            if (close < 0)
            {
                errors.Add(new ConfigError(source, path, $"'${{' at character {i + 1} has no closing '}}'"));
                return text;
            }
            var body = text[(i + 2)..close];
            var separator = body.IndexOf(":-", StringComparison.Ordinal);
            var name = separator >= 0 ? body[..separator] : body;
            var fallback = separator >= 0 ? body[(separator + 2)..] : null;
            if (!IsVariableName(name))
            {
                errors.Add(new ConfigError(source, path, $"'${{{body}}}' is not a valid variable reference; use ${{NAME}} or ${{NAME:-default}}"));
                return text;
            }
            var value = lookup(name);
            if (string.IsNullOrEmpty(value))
            {
                if (fallback is null)
                {
                    errors.Add(new ConfigError(source, path, $"environment variable {name} is not set; export it or write ${{{name}:-default}}"));
                    value = "";
                }
                else value = fallback;
            }
            result.Append(value);
            i = close + 1;
        }
        return result.ToString();
    }

    private static bool IsVariableName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
