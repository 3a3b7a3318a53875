"""The prefix cache's core: block hashing (`hashing`), synthetic payloads (`payload`), the
`BlockStore` contract (`store`), its backends (`memory_store`, `redis_store`) and their table
(`backends`). Pure library: the only I/O is the Redis backend's client, created lazily."""
