"""The gateway's domain: models, ports, errors and use cases. Imports only the standard library."""
