"""What people and scrapers see over HTTP: routing, auth and the one place errors become
answers (`http`), `/stats` read through the store, `/metrics`, the dashboard pages, and
`sms-stats serve` (a laptop's WSGI server, never in the function's zip).
"""
