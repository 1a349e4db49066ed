"""Controller drivers: sans-IO protocol cores, thin asyncio transports, and simulators."""
