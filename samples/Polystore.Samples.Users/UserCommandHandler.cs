using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using Polystore.Integration.Outbox;

namespace Polystore.Samples.Users;

/// <summary>
/// Handles the user commands. Each command changes the <c>users</c> row and appends its event to the
/// outbox in one PostgreSQL statement, so the event exists if and only if the change committed; the
/// outbox dispatcher then delivers it to the projections.
/// </summary>
public sealed class UserCommandHandler
{
    /// <summary>The outbox stream of user events.</summary>
    public const string Stream = "user";
    /// <summary>Event type of a new user.</summary>
    public const string UserCreated = "user.created";
    /// <summary>Event type of a changed user.</summary>
    public const string UserUpdated = "user.updated";

    private readonly NpgsqlDataSource _dataSource;
    private readonly OutboxStore _outbox;
    private readonly string _schema;
    private readonly string _users;

    /// <summary>Creates the handler over <c>schema.users</c>, beside the outbox in the same schema.</summary>
    public UserCommandHandler(NpgsqlDataSource dataSource, OutboxStore outbox)
    {
        ArgumentNullException.ThrowIfNull(outbox);
        _dataSource = dataSource;
        _outbox = outbox;
        // OutboxStore accepts only plain lower-case identifiers, so quoting needs no escaping.
        _schema = $"\"{outbox.Schema}\"";
        _users = $"{_schema}.users";
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

    /// <summary>Creates a user and appends <c>user.created</c> atomically; returns the new id.</summary>
    public async Task<long> CreateUserAsync(CreateUser command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentException.ThrowIfNullOrWhiteSpace(command.Email, nameof(command.Email));
        ArgumentException.ThrowIfNullOrWhiteSpace(command.Name, nameof(command.Name));
        ArgumentNullException.ThrowIfNull(command.Region, nameof(command.Region));
        var profile = await ExecuteAsync(
            $"INSERT INTO {_users} (email, name, region) VALUES ($2, $3, $4) RETURNING *", UserCreated,
            [command.Email, command.Name, command.Region], cancellationToken).ConfigureAwait(false);
        return profile!.Id;
    }

    /// <summary>Updates a user, bumps its version and appends <c>user.updated</c> atomically; returns the new version.</summary>
    /// <exception cref="KeyNotFoundException">No user has <see cref="UpdateUser.Id"/>.</exception>
    public async Task<long> UpdateUserAsync(UpdateUser command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var profile = await ExecuteAsync(
            $"UPDATE {_users} SET name = coalesce($3, name), region = coalesce($4, region), version = version + 1, updated_at = now() WHERE id = $2 RETURNING *",
            UserUpdated, [command.Id, command.Name, command.Region], cancellationToken).ConfigureAwait(false);
        return profile?.Version ?? throw new KeyNotFoundException($"no user with id {command.Id}");
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
                        result[reader.GetInt64(0).ToString(CultureInfo.InvariantCulture)] = reader.GetInt64(1);
            }
        }
        return result;
    }

    /// <summary>
    /// Runs the row change, its outbox event and the wake-up NOTIFY as one statement: one round trip, and
    /// atomic because a statement outside an explicit transaction is its own transaction. The NOTIFY is
    /// throttled with a transaction-scoped try-lock, as <see cref="OutboxStore.AppendAsync(NpgsqlTransaction, IReadOnlyList{OutboxMessage}, CancellationToken)"/> does.
    /// </summary>
    private async Task<UserProfile?> ExecuteAsync(string change, string eventType, object?[] arguments, CancellationToken cancellationToken)
    {
        var sql = $"""
            WITH u AS ({change}),
            e AS (
                INSERT INTO {_schema}.outbox (stream, aggregate_id, version, type, payload)
                SELECT '{Stream}', u.id::text, u.version, $1,
                       jsonb_build_object('id', u.id, 'email', u.email, 'name', u.name, 'region', u.region, 'version', u.version, 'created_at', u.created_at)
                FROM u)
            SELECT u.id, u.email, u.name, u.region, u.version, u.created_at, (SELECT pg_notify($5, '') WHERE pg_try_advisory_xact_lock(hashtextextended($5, 0))) FROM u
            """;
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var command = new NpgsqlCommand(sql, connection);
            await using (command.ConfigureAwait(false))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = eventType });
                foreach (var argument in arguments)
                    command.Parameters.Add(argument is null ? new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text } : new NpgsqlParameter { Value = argument });
                command.Parameters.Add(new NpgsqlParameter { Value = _outbox.Channel });
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false)) return null;
                    return new UserProfile(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt64(4), reader.GetFieldValue<DateTimeOffset>(5));
                }
            }
        }
    }
}
