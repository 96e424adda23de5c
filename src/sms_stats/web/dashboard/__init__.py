"""The dashboard: `GET /dashboard`, `/login`, `/logout`. Loaded only by an HTTP request for one of
these paths, never by a timer run (its charts and store reading cost nothing there)."""
