"""What the messages cost and whether their volume is ordinary: each app's hour history
(`history`), month to date and the month's forecast (`forecast`, `month`), and the summary the
dashboard and `/metrics` read (`summary`). Below alerts (their money and surge metrics read it)
and the web side; it reads the store and asks the API for one range of sends at most.
"""
