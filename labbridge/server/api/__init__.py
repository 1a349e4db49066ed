"""REST and websocket routers, one module per area.
"""
