"""Test support code (importable from tests as `support`, since pytest puts tests/ on sys.path)."""
