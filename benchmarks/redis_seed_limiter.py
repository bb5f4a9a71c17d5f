"""The usual redis-py check_rate_limit snippet, driven by asyncio coroutines over 1,000 keys.

Run by `polystore-bench redis` (env: REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, BENCH_SECONDS, BENCH_PREFIX,
BENCH_CALLERS). Prints one JSON object: {"decisions_per_s": ..., "p50_ms": ..., "p99_ms": ...}.
Needs redis-py (Debian: python3-redis).
"""
import asyncio
import json
import os
import random
import time

import redis.asyncio as redis

redis_client = redis.Redis(host=os.environ.get("REDIS_HOST", "127.0.0.1"), port=int(os.environ["REDIS_PORT"]),
                           password=os.environ.get("REDIS_PASSWORD") or None)


# The usual pattern, measured as written. redis-py's pipeline() is transactional by default (MULTI/EXEC), so
# the four commands run together; but the entry is added before it is counted, so a rejected call still
# consumes the window, and members named str(time.time()) collide (two calls in the same instant count once).
async def check_rate_limit(user_id: str, limit: int = 100, window: int = 1):
    key = f"{PREFIX}:{user_id}"
    now = time.time()
    pipe = redis_client.pipeline()
    pipe.zremrangebyscore(key, 0, now - window)
    pipe.zadd(key, {str(now): now})
    pipe.zcard(key)
    pipe.expire(key, window)
    results = await pipe.execute()
    count = results[2]
    return count <= limit


PREFIX = os.environ.get("BENCH_PREFIX", "bench:seedpy")
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
CALLERS = int(os.environ.get("BENCH_CALLERS", "64"))
KEYS = [str(i) for i in range(1000)]


async def run(seconds):
    latencies = []
    end = time.perf_counter() + seconds

    async def worker():
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            await check_rate_limit(random.choice(KEYS))
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CALLERS)))
    return len(latencies) / (time.perf_counter() - start), sorted(latencies)


async def main():
    await run(min(0.5, SECONDS))  # warm-up: open the connections
    rate, latencies = await run(SECONDS)
    await redis_client.close()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    print(json.dumps({"decisions_per_s": rate, "p50_ms": pct(0.50), "p99_ms": pct(0.99)}))


asyncio.run(main())
