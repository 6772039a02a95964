"""Benchmarks: Switchyard against a mock provider directly and against the LiteLLM proxy."""
