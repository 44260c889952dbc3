"""roomctl: make LiveKit rooms match what is declared in YAML."""
