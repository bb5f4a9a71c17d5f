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
                scalar.FromVariable = text.Contains("${", StringComparison.Ordinal);
                break;
            case ConfigMap map:
                foreach (var (key, child) in map.Entries) Apply(child, path.Length == 0 ? key : $"{path}.{key}", lookup, errors);
                break;
            case ConfigList list:
                for (var i = 0; i < list.Items.Count; i++) Apply(list.Items[i], $"{path}[{i}]", lookup, errors);
                break;
        }
    }

    /// <summary>How deep <c>${A:-${B:-...}}</c> defaults may nest.</summary>
    public const int MaxNesting = 8;

    internal static string Expand(string text, ConfigSource source, string path, Func<string, string?> lookup, List<ConfigError> errors) =>
        Expand(text, source, path, lookup, errors, depth: 0) ?? text;

    // Errors never quote the text: it may be, or hold, a secret.
    private static string? Expand(string text, ConfigSource source, string path, Func<string, string?> lookup, List<ConfigError> errors, int depth)
    {
        if (depth > MaxNesting)
        {
            errors.Add(new ConfigError(source, path, $"${{...}} defaults nest more than {MaxNesting} levels deep"));
            return null;
        }
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
            var close = MatchingBrace(text, i + 2);
            if (close < 0)
            {
                errors.Add(new ConfigError(source, path, $"'${{' at character {i + 1} has no closing '}}'"));
                return null;
            }
            var body = text[(i + 2)..close];
            var separator = body.IndexOf(":-", StringComparison.Ordinal);
            var name = separator >= 0 ? body[..separator] : body;
            if (!IsVariableName(name))
            {
                errors.Add(new ConfigError(source, path, $"the reference at character {i + 1} is not a variable name; use ${{NAME}} or ${{NAME:-default}} (NAME: letters, digits, _)"));
                return null;
            }
            var value = lookup(name);
            if (string.IsNullOrEmpty(value))
            {
                if (separator < 0)
                {
                    errors.Add(new ConfigError(source, path, $"environment variable {name} is not set; export it or write ${{{name}:-default}}"));
                    value = "";
                }
                else
                {
                    // As a shell does: the default is expanded in turn (only when it is used).
                    value = Expand(body[(separator + 2)..], source, path, lookup, errors, depth + 1);
                    if (value is null) return null;
                }
            }
            result.Append(value);
            i = close + 1;
        }
        return result.ToString();
    }

    /// <summary>The index of the '}' that closes a '${' whose body starts at <paramref name="from"/>, counting nested '${'.</summary>
    private static int MatchingBrace(string text, int from)
    {
        var open = 1;
        for (var i = from; i < text.Length; i++)
        {
            if (text[i] == '$' && i + 1 < text.Length && text[i + 1] == '{')
            {
                open++;
                i++;
            }
            else if (text[i] == '}' && --open == 0) return i;
        }
        return -1;
    }

    private static bool IsVariableName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
}
