"""The Scrapy side of a Hermit worker: scheduler, item sink, and their Redis outbox."""
