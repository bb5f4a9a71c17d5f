namespace Polystore.Core.Configuration;

/// <summary>Marks a setting whose value must never be printed, logged or put in an exception message.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SecretAttribute : Attribute;

/// <summary>The YAML spelling of an enum member or a property, where it is not the snake_case of its C# name.</summary>
/// <param name="name">The name as written in YAML.</param>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property)]
public sealed class ConfigNameAttribute(string name) : Attribute
{
    /// <summary>The name as written in YAML.</summary>
    public string Name { get; } = name;
}
