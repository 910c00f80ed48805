"""Core commands: plugins, validate, run (filled in below)."""
