using System.Text.Json;
using System.Text.Json.Serialization;
using Npgsql;
using Polystore.Integration.Outbox;

namespace Polystore.Integration.Cqrs;

/// <summary>The seed's CreateUserCommand.</summary>
/// <param name="Email">Unique e-mail address.</param>
/// <param name="Name">Display name.</param>
/// <param name="Region">Region, for the analytics query.</param>
public sealed record CreateUser(string Email, string Name, string Region);

/// <summary>Changes a user's name and/or region.</summary>
/// <param name="Id">The user.</param>
/// <param name="Name">The new name, or null to keep it.</param>
/// <param name="Region">The new region, or null to keep it.</param>
public sealed record UpdateUser(long Id, string? Name, string? Region);

/// <summary>The read model of a user (the seed's <c>user_profiles</c> document), also the event payload.</summary>
/// <param name="Id">The user id.</param>
/// <param name="Email">E-mail address.</param>
/// <param name="Name">Display name.</param>
/// <param name="Region">Region.</param>
/// <param name="Version">The user's version in PostgreSQL when this was written.</param>
/// <param name="CreatedAt">When the user was created.</param>
public sealed record UserProfile(
    [property: JsonPropertyName("id")] long Id,
    [property: JsonPropertyName("email")] string Email,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("region")] string Region,
    [property: JsonPropertyName("version")] long Version,
    [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt);

/// <summary>
/// The seed's UserCommandHandler without its dual write: the row and its event are written in one
/// PostgreSQL transaction, and the outbox dispatcher delivers the event.
/// </summary>
public sealed class UserCommandHandler
{
    /// <summary>Event type of a new user.</summary>
    public const string UserCreated = "user.created";
    /// <summary>Event type of a changed user.</summary>
    public const string UserUpdated = "user.updated";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly NpgsqlDataSource _dataSource;
    private readonly OutboxStore _outbox;
    private readonly string _users;

    /// <summary>Creates the handler over <c>schema.users</c> and the outbox in the same schema.</summary>
    public UserCommandHandler(NpgsqlDataSource dataSource, OutboxStore outbox)
    {
        _dataSource = dataSource;
        _outbox = outbox;
        _users = $"{outbox.QuotedSchema}.users";
    }

    /// <summary>Creates the users table (and the outbox) if missing.</summary>
    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        await _outbox.EnsureCreatedAsync(_dataSource, cancellationToken).ConfigureAwait(false);
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand(
                $"""
                CREATE TABLE IF NOT EXISTS {_users} (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    email text NOT NULL UNIQUE,
                    name text NOT NULL,
                    region text NOT NULL,
                    version bigint NOT NULL DEFAULT 1,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now())
                """, connection);
            await using (command.ConfigureAwait(false)) await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Creates a user and appends <c>user.created</c> in the same transaction; returns the new id.</summary>
    public async Task<long> CreateUserAsync(CreateUser command, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(command.Email, nameof(command.Email));
        ArgumentException.ThrowIfNullOrWhiteSpace(command.Name, nameof(command.Name));
        return await InTransactionAsync(async (connection, transaction) =>
        {
            var insert = new NpgsqlCommand($"INSERT INTO {_users} (email, name, region) VALUES ($1, $2, $3) RETURNING id, version, created_at", connection, transaction);
            await using (insert.ConfigureAwait(false))
            {
                insert.Parameters.Add(new NpgsqlParameter { Value = command.Email });
                insert.Parameters.Add(new NpgsqlParameter { Value = command.Name });
                insert.Parameters.Add(new NpgsqlParameter { Value = command.Region });
                var profile = await ReadProfileAsync(insert, command.Email, command.Name, command.Region, cancellationToken).ConfigureAwait(false);
                await _outbox.AppendAsync(transaction, ToMessage(UserCreated, profile), cancellationToken).ConfigureAwait(false);
                return profile.Id;
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Updates a user, bumps its version and appends <c>user.updated</c>; returns the new version.</summary>
    /// <exception cref="KeyNotFoundException">No user has <see cref="UpdateUser.Id"/>.</exception>
    public async Task<long> UpdateUserAsync(UpdateUser command, CancellationToken cancellationToken = default)
    {
        return await InTransactionAsync(async (connection, transaction) =>
        {
            var update = new NpgsqlCommand(
                $"""
                UPDATE {_users} SET name = coalesce($2, name), region = coalesce($3, region), version = version + 1, updated_at = now()
                WHERE id = $1 RETURNING id, version, created_at, email, name, region
                """, connection, transaction);
            await using (update.ConfigureAwait(false))
            {
                update.Parameters.Add(new NpgsqlParameter { Value = command.Id });
                update.Parameters.Add(new NpgsqlParameter { Value = (object?)command.Name ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
                update.Parameters.Add(new NpgsqlParameter { Value = (object?)command.Region ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
                UserProfile profile;
                var reader = await update.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) throw new KeyNotFoundException($"no user with id {command.Id}");
                    profile = new UserProfile(reader.GetInt64(0), reader.GetString(3), reader.GetString(4), reader.GetString(5), reader.GetInt64(1), reader.GetFieldValue<DateTimeOffset>(2));
                }
                await _outbox.AppendAsync(transaction, ToMessage(UserUpdated, profile), cancellationToken).ConfigureAwait(false);
                return profile.Version;
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every user's (id, version) in PostgreSQL, the source of truth, for consistency checks.</summary>
    public async Task<IReadOnlyDictionary<string, long>> GetVersionsAsync(CancellationToken cancellationToken = default)
    {
        var result = new Dictionary<string, long>();
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand($"SELECT id, version FROM {_users}", connection);
            await using (command.ConfigureAwait(false))
            {
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                    while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        result[reader.GetInt64(0).ToString(System.Globalization.CultureInfo.InvariantCulture)] = reader.GetInt64(1);
            }
        }
        return result;
    }

    private static async Task<UserProfile> ReadProfileAsync(NpgsqlCommand insert, string email, string name, string region, CancellationToken cancellationToken)
    {
        var reader = await insert.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            return new UserProfile(reader.GetInt64(0), email, name, region, reader.GetInt64(1), reader.GetFieldValue<DateTimeOffset>(2));
        }
    }

    internal static OutboxMessage ToMessage(string type, UserProfile profile) =>
        new("user", profile.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), profile.Version, type, JsonSerializer.Serialize(profile, Json));

    private async Task<TResult> InTransactionAsync<TResult>(Func<NpgsqlConnection, NpgsqlTransaction, Task<TResult>> work, CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                var result = await work(connection, transaction).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                return result;
            }
        }
    }
}
