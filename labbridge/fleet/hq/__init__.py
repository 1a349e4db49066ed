"""Headquarters (``labbridge fleet``): every lab's status, machine states, events and jobs, through the broker.

``link`` subscribes and sends requests, ``fleet`` keeps the live picture, ``store`` its SQLite,
``api`` and ``app`` the web side (built from the lab server's own auth, store, hub and routers),
``static/`` the page. May import ``labbridge.fleet``'s shared parts and ``labbridge.server``.
"""
