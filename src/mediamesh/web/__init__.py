"""What the API and the web UI share: authentication (tokens, sessions, signed links), request limits,
error responses and request dependencies. Both ``api/`` and ``ui/`` build on it; it imports neither."""
