"""Streaming programs to machines, the live hub and the web server."""
