"""Where records are kept and read back: the `Store` protocol, the file directory and COS (each
a sink too), the store's zone and its hour layout, and the readers of stored hours that
healing, gaps, read-through answers and `/metrics` share. Knows no API and no chat.
"""
