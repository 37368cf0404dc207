"""Adapters: the real implementations of the ports in ``settlement.ports`` (WeChat API over aiohttp)."""
