"""Command handlers: ``async def handler(session, args) -> Reply``; they never write."""
