"""The web server: FastAPI app, sign-in and roles, SQLite store, live websocket hub, the lab it runs, static dashboard.

``app`` builds everything; ``commands/`` defines each machine command once (REST and websocket serve it from
there); ``api/`` holds one router per area; ``static/`` is the dashboard (plain ES modules,
front-end libraries from npm at install time, never a CDN).

May import everything below it (safety, streaming, drivers, protocols, transports), never ``labbridge.sim``:
the demo's simulators arrive from the CLI as a callable.
"""
