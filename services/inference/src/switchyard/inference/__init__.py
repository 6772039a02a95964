"""Switchyard inference service."""
