"""HTTP transports that drive the sans-IO core: urllib3 (sync) and aiohttp (async)."""
