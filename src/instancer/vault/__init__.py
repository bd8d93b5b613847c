"""Flag encryption at rest (adapter for the `FlagVault` port)."""
