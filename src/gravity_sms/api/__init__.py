"""The HTTP and WebSocket API: app factory, conventions, authentication, routes."""
