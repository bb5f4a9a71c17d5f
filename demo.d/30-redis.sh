# Redis toolkit: cache miss/hit with timings, a stampede that calls the factory once,
# the sliding-window limiter allowing then denying with retry-after, and a fenced lock under contention.
say "polystore demo redis   (cache, stampede, rate limiter, fenced lock on the private Redis)"
polystore demo redis
