"""The sandbox's well-known names, importable without loading the sandbox itself (the protobufs
behind it cost ~0.1 s of start-up that a run against a real server does not need)."""

DEFAULT_API_KEY = "devkey"
DEFAULT_API_SECRET = "secret"
DEFAULT_PNM_KEY = "plugnmeet"
DEFAULT_PNM_SECRET = "secret"
EMBEDDED_URL = "http://sandbox.embedded"
