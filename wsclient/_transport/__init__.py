"""The only place that imports websockets' asyncio and trio implementations."""
