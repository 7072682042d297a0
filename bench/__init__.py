"""Benchmarks of the chatbot against the raw Anthropic SDK (`make bench` → docs/BENCHMARKS.md)."""
