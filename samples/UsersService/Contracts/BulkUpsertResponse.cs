namespace Polystore.Samples.UsersService;

/// <summary>What a bulk upsert did: rows read, users inserted, users changed, and rows that changed nothing.</summary>
internal sealed record BulkUpsertResponse(long Received, long Inserted, long Updated, long Unchanged);
