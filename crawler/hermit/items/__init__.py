"""A crawl's items, made durable in its Redis stream (``hermit:{crawl}:items``, on the
crawl's first shard): the worker's pipeline that appends them
(:mod:`hermit.items.sink`), the script that appends a write batch once however
often it is sent (``add_items.lua``, run by the queue in the same transaction as
the acks of the requests that produced them) and their export to JSON Lines
(:mod:`hermit.items.export`)."""
