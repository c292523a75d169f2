"""HTTP only: the app factory and lifespan, routes, schemas, settings, auth, rate limits,
server-sent events, metrics and the run store. Imports ``agents`` and ``tools``, never back."""
