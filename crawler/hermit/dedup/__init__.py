"""Request-fingerprint dedup: a scalable Bloom filter in Redis bitmaps."""
