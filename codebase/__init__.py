"""Everything the scripts share: data, networks, engines, complexity and latency, search, I/O."""
