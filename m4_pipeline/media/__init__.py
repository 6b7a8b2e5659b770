"""Media engines: plain Python (no Ray) used by the adapters."""
