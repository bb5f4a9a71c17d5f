namespace Polystore.Postgres.Querying;

/// <summary>What a cursor carries: the query it belongs to, the side of the row, and the row's key values as text.</summary>
internal sealed record CursorPayload(int V, string Q, bool After, string[] K);
