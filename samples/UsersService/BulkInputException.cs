namespace Polystore.Samples.UsersService;

/// <summary>A row of a bulk request is malformed or invalid; thrown from the row stream, so the upsert rolls back.</summary>
internal sealed class BulkInputException(InputErrors errors) : Exception("a row of the bulk request is invalid")
{
    public InputErrors Errors { get; } = errors;
}
