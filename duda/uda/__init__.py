"""Self-training UDA methods and their loss terms."""
