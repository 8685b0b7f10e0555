"""Public property checks (filled in module by module)."""
