using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Polystore.Samples.Users;

namespace Polystore.Samples.UsersService;

/// <summary>
/// Reads and checks the JSON of the user and order requests field by field, so a bad request is answered with the
/// field that is wrong and why (unknown fields, wrong types, missing or malformed values) before anything is written.
/// </summary>
internal static partial class UserInput
{
    public const int MaxEmailLength = 254;
    public const int MaxNameLength = 200;
    public const int MaxRegionLength = 64;
    public const decimal MaxAmount = 1_000_000_000m;

    /// <summary>A new user (all fields required); null when <paramref name="errors"/> got entries under <paramref name="at"/>.</summary>
    public static CreateUser? ReadCreate(JsonElement body, string at, InputErrors errors)
    {
        var fields = Fields(body, at, errors, "email", "name", "region");
        if (fields is null) return null;
        var email = Text(fields, "email", at, errors, required: true, MaxEmailLength, EmailProblem);
        var name = Text(fields, "name", at, errors, required: true, MaxNameLength, NameProblem);
        var region = Text(fields, "region", at, errors, required: true, MaxRegionLength, RegionProblem);
        return errors.Any || email is null || name is null || region is null ? null : new CreateUser(email, name, region);
    }

    /// <summary>A change (name and/or region); null when <paramref name="errors"/> got entries.</summary>
    public static (string? Name, string? Region)? ReadPatch(JsonElement body, InputErrors errors)
    {
        var fields = Fields(body, "", errors, "name", "region");
        if (fields is null) return null;
        var name = Text(fields, "name", "", errors, required: false, MaxNameLength, NameProblem);
        var region = Text(fields, "region", "", errors, required: false, MaxRegionLength, RegionProblem);
        if (!fields.ContainsKey("name") && !fields.ContainsKey("region")) errors.Add(RequestJson.BodyField, "must have at least one of the fields name and region.");
        return errors.Any ? null : (name, region);
    }

    /// <summary>An order; null when <paramref name="errors"/> got entries.</summary>
    public static (long UserId, decimal Amount)? ReadOrder(JsonElement body, InputErrors errors)
    {
        var fields = Fields(body, "", errors, "userId", "amount");
        if (fields is null) return null;
        long? userId = null;
        decimal? amount = null;
        if (!fields.TryGetValue("userId", out var u)) errors.Add("userId", "is required.");
        else if (u.ValueKind != JsonValueKind.Number || !u.TryGetInt64(out var id) || id < 1) errors.Add("userId", "must be a positive integer.");
        else userId = id;
        if (!fields.TryGetValue("amount", out var a)) errors.Add("amount", "is required.");
        else if (a.ValueKind != JsonValueKind.Number) errors.Add("amount", "must be a number.");
        else if (!a.TryGetDecimal(out var value)) errors.Add("amount", $"must be above 0 and at most {MaxAmount.ToString("N0", CultureInfo.InvariantCulture)} (it is out of range).");
        else if (value <= 0 || value > MaxAmount) errors.Add("amount", $"must be above 0 and at most {MaxAmount.ToString("N0", CultureInfo.InvariantCulture)}.");
        else if (decimal.Round(value, 2) != value || !FitsDecimal(a)) errors.Add("amount", "must have at most 2 decimal places.");
        else amount = value;
        return errors.Any ? null : (userId!.Value, amount!.Value);
    }

    // A decimal holds 28 significant digits: beyond them the parser rounds without a word (5.000...0001 is read as 5),
    // so an amount in range with more has more than 2 decimal places, and is refused rather than stored as another amount.
    private static bool FitsDecimal(JsonElement number)
    {
        var text = number.GetRawText().AsSpan().TrimStart('-');
        var exponent = text.IndexOfAny('e', 'E');
        var mantissa = (exponent < 0 ? text : text[..exponent]).ToString().Replace(".", "", StringComparison.Ordinal).Trim('0');
        return mantissa.Length <= 28;
    }

    /// <summary>A route or query id: a positive integer; null (with an error) otherwise.</summary>
    public static long? ReadId(string text, string field, InputErrors errors)
    {
        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0) return id;
        errors.Add(field, "must be a positive integer.");
        return null;
    }

    private static Dictionary<string, JsonElement>? Fields(JsonElement body, string at, InputErrors errors, params string[] known)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            errors.Add(at.Length == 0 ? RequestJson.BodyField : at, $"must be a JSON object, not {Describe(body.ValueKind)}.");
            return null;
        }
        // Unknown and repeated fields are reported beside the problems of the known ones.
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in body.EnumerateObject())
        {
            if (Decoded(property) is not { } given)
            {
                errors.Add(at.Length == 0 ? RequestJson.BodyField : at, $"has a field name that {NotText}");
                continue;
            }
            var name = known.FirstOrDefault(k => string.Equals(k, given, StringComparison.OrdinalIgnoreCase));
            if (name is null) errors.Add(Path(at, given), $"is not a known field (expected {string.Join(", ", known)}).");
            else if (!fields.TryAdd(name, property.Value)) errors.Add(Path(at, name), "is given more than once.");
        }
        return fields;
    }

    private static string? Text(Dictionary<string, JsonElement> fields, string name, string at, InputErrors errors, bool required, int maxLength, Func<string, string?> problem)
    {
        var field = Path(at, name);
        if (!fields.TryGetValue(name, out var value))
        {
            if (required) errors.Add(field, "is required.");
            return null;
        }
        if (value.ValueKind != JsonValueKind.String)
        {
            errors.Add(field, $"must be a string, not {Describe(value.ValueKind)}.");
            return null;
        }
        if (Decoded(value) is not { } text)
        {
            errors.Add(field, NotText);
            return null;
        }
        if (text.Length == 0 || string.IsNullOrWhiteSpace(text)) errors.Add(field, "must not be empty.");
        else if (text.Length > maxLength) errors.Add(field, $"must be at most {maxLength} characters (it has {text.Length}).");
        else if (text.Any(char.IsControl)) errors.Add(field, "must not contain control characters.");
        else if (problem(text) is { } message) errors.Add(field, message);
        else return text;
        return null;
    }

    // The parser checks a string's text only when it is read: invalid UTF-8 and unpaired surrogate escapes (\ud800)
    // throw then, and are answered as a bad field instead of reaching the 500 handler.
    private const string NotText = "is not valid text (invalid UTF-8, or an unpaired surrogate escape such as \\ud800).";

    private static string? Decoded(JsonProperty property)
    {
        try { return property.Name; }
        catch (InvalidOperationException) { return null; }
    }

    private static string? Decoded(JsonElement value)
    {
        try { return value.GetString(); }
        catch (InvalidOperationException) { return null; }
    }

    private static string? EmailProblem(string email) => EmailPattern().IsMatch(email) ? null : "must be an e-mail address (local@domain, no spaces).";

    private static string? NameProblem(string name) => name.Trim().Length != name.Length ? "must not start or end with spaces." : null;

    private static string? RegionProblem(string region) => RegionPattern().IsMatch(region) ? null : "must be letters, digits, '-' and '_' only.";

    private static string Path(string at, string name) => at.Length == 0 ? name : $"{at}.{name}";

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.Number => "a number",
        JsonValueKind.String => "a string",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "nothing",
    };

    [GeneratedRegex(@"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    private static partial Regex EmailPattern();

    [GeneratedRegex("^[A-Za-z0-9_-]+$")]
    private static partial Regex RegionPattern();
}
