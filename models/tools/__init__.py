"""Developer tools that run outside the service (fixture generators, converters)."""
