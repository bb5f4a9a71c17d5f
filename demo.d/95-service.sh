# The users service under a few real requests (sourced by ./run demo): status codes and timings, a stale write
# refused, the cache serving the new version after a PATCH, and the rate limit answering 429.
say "the users service   (samples/UsersService: ./run serve runs it for you to try)"
trap 'stop_users_service; down_if_started' EXIT
# A small rate limit so that the tour reaches it, and a cursor-signing key as a deployment would set.
start_users_service UsersService__RateLimit__PermitLimit=12 UsersService__Schema=demo_service Logging__LogLevel__Default=Warning \
  UsersService__CursorKey="$(head -c 32 /dev/urandom | base64)"
python3 - "$SERVICE_URL" <<'PY'
import json, sys, time, urllib.error, urllib.request, uuid

base = sys.argv[1]

def call(method, path, body=None, headers=None, api_key=None):
    # Each call its own client unless told otherwise, so only the last step meets the rate limit.
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Api-Key": api_key or uuid.uuid4().hex, **(headers or {})}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, head, text = response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as e:
        status, head, text = e.code, e.headers, e.read().decode()
    return status, head, text, (time.perf_counter() - started) * 1000

def show(label, status, head, ms, note=""):
    print(f"  {label:<42} {status}  {ms:6.1f} ms  {note}")

email = f"ada.{int(time.time())}@example.com"
status, head, text, ms = call("POST", "/users", {"email": email, "name": "Ada", "region": "eu"})
user = json.loads(text)
uid = user["id"]
show("POST /users", status, head, ms, f"ETag {head['ETag']}  (row + outbox event, one statement)")

# The profile appears once the outbox dispatcher has projected the event.
for _ in range(100):
    status, head, text, ms = call("GET", f"/users/{uid}/profile")
    if status == 200: break
    time.sleep(0.1)
show(f"GET /users/{uid}/profile", status, head, ms, f"X-Cache: {head.get('X-Cache')}  version {json.loads(text)['version']}")
status, head, text, ms = call("GET", f"/users/{uid}/profile")
show(f"GET /users/{uid}/profile", status, head, ms, f"X-Cache: {head.get('X-Cache')}")

status, head, text, ms = call("PATCH", f"/users/{uid}", {"name": "Ada Lovelace"}, {"If-Match": '"1"'})
show(f'PATCH /users/{uid}  If-Match "1"', status, head, ms, f"ETag {head.get('ETag')}")
status, head, text, ms = call("PATCH", f"/users/{uid}", {"name": "Someone else"}, {"If-Match": '"1"'})
show(f'PATCH /users/{uid}  If-Match "1" again', status, head, ms, "stale version: refused, nothing written")

# The projection invalidates the cached profile: the next reads reach version 2, never version 1 again.
for _ in range(100):
    status, head, text, ms = call("GET", f"/users/{uid}/profile")
    if json.loads(text)["version"] == 2: break
    time.sleep(0.1)
show(f"GET /users/{uid}/profile", status, head, ms, f"X-Cache: {head.get('X-Cache')}  version 2, name {json.loads(text)['name']!r}")

status, head, text, ms = call("GET", "/users?limit=2")
show("GET /users?limit=2", status, head, ms, "a keyset page and its signed next cursor")
status, head, text, ms = call("GET", "/users?after=forged&limit=2")
show("GET /users?after=forged", status, head, ms, json.loads(text).get("title", ""))

for _ in range(30):
    status, head, text, ms = call("GET", "/users/ranked", api_key="one-client")
    if status == 429: break
show("GET /users/ranked (until the limit)", status, head, ms, f"Retry-After: {head.get('Retry-After')}  RateLimit: {head.get('RateLimit')}")
if status != 429: sys.exit("the rate limit never answered 429")
PY
stop_users_service
trap down_if_started EXIT
