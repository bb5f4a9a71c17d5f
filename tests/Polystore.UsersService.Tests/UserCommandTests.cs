using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Polystore.UsersService.Tests;

/// <summary>POST /users and PATCH /users/{id}: the row and its event together, ETags, and every rejection.</summary>
public sealed class UserCommandTests(UserCommandTests.Fixture fixture) : IClassFixture<UserCommandTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        public ServiceApp App { get; private set; } = null!;
        public async ValueTask InitializeAsync() => App = await ServiceApp.StartAsync("svc_cmd");
        public async ValueTask DisposeAsync() => await App.DisposeAsync();
    }

    private static CancellationToken Ct => ServiceApp.Ct;
    private ServiceApp App => fixture.App;

    private static string Email() => $"{Guid.NewGuid():N}@example.test";

    private Task<HttpResponseMessage> PatchAsync(string path, string json, string? ifMatch, string mediaType = "application/json")
    {
        var request = new HttpRequestMessage(HttpMethod.Patch, path) { Content = new StringContent(json, Encoding.UTF8, mediaType) };
        if (ifMatch is not null) request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
        return App.Client.SendAsync(request, Ct);
    }

    [Fact]
    public async Task Create_answers_201_with_Location_and_ETag_and_writes_the_row_and_its_event_together()
    {
        var email = Email();
        using var response = await App.PostJsonAsync("/users", JsonSerializer.Serialize(new { email, name = "Ann", region = "eu-west" }));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var user = await ServiceApp.ReadAsync(response);
        var id = user.GetProperty("id").GetInt64();
        Assert.Equal($"/users/{id}", response.Headers.Location!.OriginalString);
        Assert.Equal(new EntityTagHeaderValue("\"1\""), response.Headers.ETag);
        Assert.Equal(email, user.GetProperty("email").GetString());
        Assert.Equal(1, user.GetProperty("version").GetInt64());
        Assert.Equal(1, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.users WHERE email = $1", email));
        Assert.Equal(1, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.outbox WHERE aggregate_id = $1 AND type = 'user.created' AND version = 1", id.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        // The Location can be read at once, with the ETag a PATCH needs (from PostgreSQL: no projection lag).
        using var read = await App.Client.GetAsync(response.Headers.Location, Ct);
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal(new EntityTagHeaderValue("\"1\""), read.Headers.ETag);
        Assert.Equal(email, (await ServiceApp.ReadAsync(read)).GetProperty("email").GetString());
        using var missing = await App.Client.GetAsync("/users/987654321", Ct);
        await ServiceApp.AssertProblemAsync(missing, 404);
    }

    [Fact]
    public async Task A_second_user_with_the_same_email_is_a_409_naming_the_field_and_writes_no_event()
    {
        var email = Email();
        await App.CreateUserAsync(email);
        var events = await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.outbox");

        using var response = await App.PostJsonAsync("/users", JsonSerializer.Serialize(new { email, name = "Bob", region = "us" }));

        var problem = await ServiceApp.AssertProblemAsync(response, 409);
        Assert.Equal("email", problem.GetProperty("field").GetString());
        Assert.Equal(events, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.outbox"));
    }

    [Theory]
    [InlineData("{\"email\":", "body")]
    [InlineData("", "body")]
    [InlineData("[1, 2]", "body")]
    [InlineData("{\"email\":\"not-an-address\",\"name\":\"Ann\",\"region\":\"eu\"}", "email")]
    [InlineData("{\"name\":\"Ann\",\"region\":\"eu\"}", "email")]
    [InlineData("{\"email\":\"a@b.test\",\"name\":\"\",\"region\":\"eu\"}", "name")]
    [InlineData("{\"email\":\"a@b.test\",\"name\":42,\"region\":\"eu\"}", "name")]
    [InlineData("{\"email\":\"a@b.test\",\"name\":\"Ann\",\"region\":\"eu west\"}", "region")]
    [InlineData("{\"email\":\"a@b.test\",\"name\":\"Ann\",\"region\":\"eu\",\"admin\":true}", "admin")]
    public async Task Bad_JSON_or_a_bad_field_is_a_400_naming_it_and_writes_nothing(string body, string field)
    {
        var before = await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.users");

        using var response = await App.PostJsonAsync("/users", body);

        await ServiceApp.AssertFieldErrorAsync(response, field);
        Assert.Equal(before, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.users"));
    }

    [Fact]
    public async Task Every_bad_field_of_one_request_is_reported()
    {
        using var response = await App.PostJsonAsync("/users", "{\"email\":\"x\",\"nam\":\"Ann\",\"region\":3}");

        var errors = (await ServiceApp.AssertProblemAsync(response, 400)).GetProperty("errors");
        Assert.Equal(["email", "nam", "name", "region"], errors.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_body_that_is_not_JSON_is_a_415_and_an_oversized_body_a_413()
    {
        using (var text = await App.PostJsonAsync("/users", "email=a@b.test", "text/plain")) await ServiceApp.AssertProblemAsync(text, 415);
        using (var untyped = await App.Client.PostAsync("/users", new ByteArrayContent(Encoding.UTF8.GetBytes("{}")), Ct))
            Assert.Equal("Content-Type", (await ServiceApp.AssertProblemAsync(untyped, 415)).GetProperty("field").GetString());

        var huge = JsonSerializer.Serialize(new { email = Email(), name = new string('x', 2 * 1024 * 1024), region = "eu" });
        // Waiting for 100 Continue, the client reads the 413 instead of writing the body into a closed connection.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/users") { Content = new StringContent(huge, Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;
        using var large = await App.Client.SendAsync(request, Ct);
        var tooLarge = await ServiceApp.AssertProblemAsync(large, 413);
        Assert.Equal("Request body too large.", tooLarge.GetProperty("title").GetString());
        Assert.Contains("1048576 bytes", tooLarge.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Patch_with_the_current_ETag_updates_bumps_the_version_and_appends_the_event()
    {
        var id = await App.CreateUserAsync(Email());

        using var response = await PatchAsync($"/users/{id}", "{\"name\":\"Annie\"}", "\"1\"");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new EntityTagHeaderValue("\"2\""), response.Headers.ETag);
        var user = await ServiceApp.ReadAsync(response);
        Assert.Equal("Annie", user.GetProperty("name").GetString());
        Assert.Equal("eu", user.GetProperty("region").GetString());
        Assert.Equal(1, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.outbox WHERE aggregate_id = $1 AND type = 'user.updated' AND version = 2", id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task Patch_with_a_stale_ETag_is_a_412_with_the_current_version_and_changes_nothing()
    {
        var id = await App.CreateUserAsync(Email());
        using (var first = await PatchAsync($"/users/{id}", "{\"region\":\"us\"}", "\"1\"")) Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        // A second writer that read version 1 too.
        using var stale = await PatchAsync($"/users/{id}", "{\"name\":\"Lost\"}", "\"1\"");

        var problem = await ServiceApp.AssertProblemAsync(stale, 412);
        Assert.Equal(2, problem.GetProperty("currentVersion").GetInt64());
        Assert.Equal(new EntityTagHeaderValue("\"2\""), stale.Headers.ETag);
        Assert.Equal("Ann", await App.ScalarAsync<string>("SELECT name FROM {schema}.users WHERE id = $1", id));
        Assert.Equal(2, await App.ScalarAsync<long>("SELECT version FROM {schema}.users WHERE id = $1", id));
    }

    [Theory]
    [InlineData("W/\"1\"")] // weak tags never match If-Match
    [InlineData("\"0001\"")] // strong comparison is character by character
    [InlineData("\"v1\"")]
    [InlineData("\"7\", \"8\"")]
    public async Task Patch_with_an_If_Match_naming_no_current_version_is_a_412(string ifMatch)
    {
        var id = await App.CreateUserAsync(Email());

        using var response = await PatchAsync($"/users/{id}", "{\"name\":\"X\"}", ifMatch);

        await ServiceApp.AssertProblemAsync(response, 412);
        Assert.Equal(1, await App.ScalarAsync<long>("SELECT version FROM {schema}.users WHERE id = $1", id));
    }

    [Fact]
    public async Task Patch_with_a_list_naming_the_current_version_or_a_star_updates()
    {
        var id = await App.CreateUserAsync(Email());

        using (var listed = await PatchAsync($"/users/{id}", "{\"name\":\"B\"}", "\"9\", \"1\"")) Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
        using var star = await PatchAsync($"/users/{id}", "{\"name\":\"C\"}", "*", "application/merge-patch+json");

        Assert.Equal(HttpStatusCode.OK, star.StatusCode);
        Assert.Equal(new EntityTagHeaderValue("\"3\""), star.Headers.ETag);
    }

    [Theory]
    [InlineData("text/plain")] // answered by routing before the handler (no endpoint accepts it)
    [InlineData(null)]         // answered by the handler
    public async Task A_body_in_another_media_type_is_a_415_of_one_shape(string? mediaType)
    {
        var id = await App.CreateUserAsync(Email());
        var request = new HttpRequestMessage(HttpMethod.Patch, $"/users/{id}") { Content = new ByteArrayContent("{\"name\":\"X\"}"u8.ToArray()) };
        if (mediaType is not null) request.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        request.Headers.TryAddWithoutValidation("If-Match", "\"1\"");
        using var response = await App.Client.SendAsync(request, Ct);

        var problem = await ServiceApp.AssertProblemAsync(response, 415);
        Assert.Equal("Content-Type", problem.GetProperty("field").GetString());
        Assert.Contains("Content-Type was", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_patches_with_a_star_all_apply()
    {
        var id = await App.CreateUserAsync(Email());

        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => PatchAsync($"/users/{id}", $"{{\"name\":\"n{i}\"}}", "*")));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(17, await App.ScalarAsync<long>("SELECT version FROM {schema}.users WHERE id = $1", id));
        Assert.Equal(16, await App.ScalarAsync<long>("SELECT count(*) FROM {schema}.outbox WHERE aggregate_id = $1 AND type = 'user.updated'", id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        foreach (var r in responses) r.Dispose();
    }

    [Theory]
    [InlineData("{\"email\":\"s@y.test\",\"name\":\"A\\ud800B\",\"region\":\"eu\"}", "name")] // an unpaired surrogate escape
    [InlineData("{\"email\":\"s@y.test\",\"name\":\"A\",\"region\":\"eu\",\"\\udc00\":1}", "body")] // in a field name
    public async Task Text_that_is_not_valid_unicode_is_a_400_naming_the_field(string json, string field)
    {
        using var response = await App.PostJsonAsync("/users", json);
        Assert.Contains("not valid text", await ServiceApp.AssertFieldErrorAsync(response, field), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bytes_that_are_not_utf8_are_a_400_naming_the_field()
    {
        using var content = new ByteArrayContent([.. "{\"email\":\"u@x.test\",\"name\":\"A"u8, 0xFF, .. "\",\"region\":\"eu\"}"u8]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await App.Client.PostAsync("/users", content, Ct);
        Assert.Contains("not valid text", await ServiceApp.AssertFieldErrorAsync(response, "name"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Patch_without_If_Match_is_a_428_and_changes_nothing()
    {
        var id = await App.CreateUserAsync(Email());

        using var response = await PatchAsync($"/users/{id}", "{\"name\":\"X\"}", null);

        var problem = await ServiceApp.AssertProblemAsync(response, 428);
        Assert.Equal("If-Match", problem.GetProperty("field").GetString());
        Assert.Equal("https://www.rfc-editor.org/rfc/rfc6585#section-3", problem.GetProperty("type").GetString());
        Assert.Equal(1, await App.ScalarAsync<long>("SELECT version FROM {schema}.users WHERE id = $1", id));
    }

    [Fact]
    public async Task Patch_of_a_missing_user_is_a_404_and_a_bad_id_or_body_a_400()
    {
        using (var missing = await PatchAsync("/users/987654321", "{\"name\":\"X\"}", "\"1\"")) await ServiceApp.AssertProblemAsync(missing, 404);
        using (var missingStar = await PatchAsync("/users/987654321", "{\"name\":\"X\"}", "*")) await ServiceApp.AssertProblemAsync(missingStar, 404);
        using (var badId = await PatchAsync("/users/abc", "{\"name\":\"X\"}", "\"1\"")) await ServiceApp.AssertFieldErrorAsync(badId, "id");
        var id = await App.CreateUserAsync(Email());
        using (var empty = await PatchAsync($"/users/{id}", "{}", "\"1\"")) await ServiceApp.AssertFieldErrorAsync(empty, "body");
        using (var badRegion = await PatchAsync($"/users/{id}", "{\"region\":null}", "\"1\"")) await ServiceApp.AssertFieldErrorAsync(badRegion, "region");
        using (var email = await PatchAsync($"/users/{id}", "{\"email\":\"x@y.test\"}", "\"1\"")) await ServiceApp.AssertFieldErrorAsync(email, "email");
        Assert.Equal(1, await App.ScalarAsync<long>("SELECT version FROM {schema}.users WHERE id = $1", id));
    }

    [Fact]
    public async Task Unknown_routes_and_methods_answer_ProblemDetails()
    {
        using (var unknown = await App.Client.GetAsync("/nothing-here", Ct)) await ServiceApp.AssertProblemAsync(unknown, 404);
        using var method = await App.Client.DeleteAsync("/users/1", Ct); // no DELETE on a user
        await ServiceApp.AssertProblemAsync(method, 405);
    }
}
