namespace Polystore.Samples.Users;

/// <summary>What <see cref="UserCommandHandler.UpsertUsersAsync"/> did.</summary>
/// <param name="Received">Rows read from the input.</param>
/// <param name="Inserted">New users.</param>
/// <param name="Updated">Existing users whose name or region changed (each got a new version and event).</param>
public sealed record UserUpsertCounts(long Received, long Inserted, long Updated)
{
    /// <summary>Rows that changed nothing: an existing user with the same name and region, or an address repeated later in its chunk.</summary>
    public long Unchanged => Received - Inserted - Updated;
}
