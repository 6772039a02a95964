"""Switchyard retrieval service."""
