"""The fleet link: every mobile lab reports to headquarters through an MQTT broker it connects out to.

Lab side (inside ``labbridge serve``): ``link`` keeps the connection (birth, retained last will,
retained machine state, back-off), ``outbox`` stores events in SQLite while the broker is out of
reach and forwards them in order, ``events`` turns the audit log, alarms, connections and jobs into
those events, ``requests`` answers headquarters' read-only requests and refuses anything that moves
a machine or changes a setting, ``approvals`` holds settings changes until an operator at the
machine accepts them, ``api`` shows all of that on the lab's dashboard.

Headquarters side (``labbridge fleet``): ``hq/`` subscribes to every lab, keeps its own SQLite and
serves a dashboard with the same users and roles as ``serve``.

``topics`` and ``mqtt`` are shared by both sides. May import ``labbridge.config``, ``model``, ``log``,
``safety`` and the server's pieces (store, auth, app, hub, api) that the two dashboards reuse; nothing
in ``drivers``, ``streaming``, ``protocols``, ``transports``, ``safety`` or ``server`` imports ``fleet``
(the CLI wires the link into ``serve``).
"""
