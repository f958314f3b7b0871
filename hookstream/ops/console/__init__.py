"""`hookstream console`: the operator web console (aiohttp, server-rendered pages).

`app.create_app` builds it; `access` signs users in and guards every state change; `views`
renders the pages; `worker_state` asks the worker for destination and lane state; `jobs`
runs redrives in the background with their progress.
"""
