"""The usual redis-py check_rate_limit snippet, driven by 64 asyncio coroutines over 1,000 keys.

Run by `polystore bench redis` (env: REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, BENCH_SECONDS, BENCH_PREFIX).
Prints one JSON object: {"decisions_per_s": ...}. Needs redis-py (Debian: python3-redis).
"""
import asyncio
import json
import os
import random
import time

import redis.asyncio as redis

redis_client = redis.Redis(host=os.environ.get("REDIS_HOST", "127.0.0.1"), port=int(os.environ["REDIS_PORT"]),
                           password=os.environ.get("REDIS_PASSWORD") or None)


# The usual pattern (non-atomic pipeline, timestamp members, rejected calls counted): measured as written.
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
KEYS = [str(i) for i in range(1000)]


async def run(seconds):
    count = 0
    end = time.perf_counter() + seconds

    async def worker():
        nonlocal count
        while time.perf_counter() < end:
            await check_rate_limit(random.choice(KEYS))
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(64)))
    return count / (time.perf_counter() - start)


async def main():
    await run(min(0.5, SECONDS))  # warm-up: open the 64 connections
    rate = await run(SECONDS)
    await redis_client.close()
    print(json.dumps({"decisions_per_s": rate}))


asyncio.run(main())
