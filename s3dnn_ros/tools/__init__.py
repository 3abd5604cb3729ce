"""Command-line tools: simulator, benchmarks, weight conversion."""
