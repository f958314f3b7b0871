"""`hookstream console`: the operator web console (aiohttp, server-rendered pages).

`app.create_app` builds it; `access` signs users in and guards every state change; `views`
renders the pages; `worker_state` reads destination and lane state from Kafka, as the
CLI does; `jobs` runs redrives in the background with their progress.
"""
