"""Built-in task generators (data made in code, nothing to download)."""
