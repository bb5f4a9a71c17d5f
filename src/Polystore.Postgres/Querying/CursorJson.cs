namespace Polystore.Postgres.Querying;

/// <summary>Source-generated JSON (de)serialization of <see cref="CursorPayload"/>.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(CursorPayload))]
internal sealed partial class CursorJson : System.Text.Json.Serialization.JsonSerializerContext;
