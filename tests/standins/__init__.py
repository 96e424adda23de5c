"""Local stand-ins for what sinks talk to: real HTTP servers on 127.0.0.1 that verify requests."""
