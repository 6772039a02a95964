"""Switchyard tools service."""
