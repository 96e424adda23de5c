"""Asking Tencent Cloud: the TC3-signed client on the official SDK (retry, deadline, 10 requests
a second per API), the strict reading of its answers, and one module per statistics API in
`apis`. Turns (app, window) into records; knows nothing of stores, sinks or triggers.
"""
