"""SQLite persistence (sqlite-utils): tokens, channels, usage."""
