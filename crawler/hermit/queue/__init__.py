"""The shared request queue in Redis: encoding, leases, priorities."""
