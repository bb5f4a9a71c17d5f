using System.Text.Json;
using Polystore.Integration.Cqrs;
using Polystore.Integration.Outbox;
using Polystore.Integration.Projections;

namespace Polystore.Samples.Users;

/// <summary>Projects the <c>user</c> stream into the <c>user_profiles</c> read model: each event's payload is the whole profile.</summary>
public sealed class UserProfileProjection : ReadModelProjection<UserProfile>
{
    /// <summary>The subscriber name of the live projection.</summary>
    public const string DefaultName = "user_profiles";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Creates the projection.</summary>
    /// <param name="store">Where profiles are kept.</param>
    /// <param name="cache">The profile cache to invalidate after each batch commits, or null.</param>
    /// <param name="name">The subscriber name (checkpoint key); a rebuild uses another.</param>
    public UserProfileProjection(IReadModelStore<UserProfile> store, ReadModelCache<UserProfile>? cache = null, string name = DefaultName)
        : base(name, store, ToProfile, cache)
    {
    }

    private static UserProfile? ToProfile(OutboxEvent outboxEvent) =>
        outboxEvent.Stream != UserCommandHandler.Stream
            ? null
            : JsonSerializer.Deserialize<UserProfile>(outboxEvent.PayloadJson, Json) ?? throw new InvalidDataException($"outbox event {outboxEvent.Id} has an empty payload");
}
