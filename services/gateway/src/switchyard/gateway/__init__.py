"""Switchyard gateway: the OpenAI-compatible HTTP + SSE edge."""
