"""Engine adapters behind the `Backend` port. Backends never import each other."""
