"""How players reach instances: the proxy's route configuration."""
