"""Route modules: each exposes `routes` (a list of Starlette routes) for the app factory."""
