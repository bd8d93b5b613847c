"""Background loops (the reaper): tick, jitter, graceful stop. They call use cases only."""
