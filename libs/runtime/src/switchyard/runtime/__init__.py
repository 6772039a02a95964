"""Switchyard runtime: plumbing every service shares (no business logic)."""
