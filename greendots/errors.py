"""What can go wrong when reading a run, in words a client can act on.

The core raises these; the HTTP layer turns each kind into its status code.
"""


class GreenDotsError(Exception):
    """Base of the errors whose message is safe to show to a client."""


class NotFound(GreenDotsError):
    """A project, run, plan, worker or file that is not there (or may not be named)."""


class BadRequest(GreenDotsError):
    """A request the server understands but will not carry out as sent."""


class NotReady(GreenDotsError):
    """Data that is still being written; asking again shortly will work."""


class BadRunData(GreenDotsError):
    """A file in the runs directory that cannot be used as it is, such as a plan
    claiming more workers than the server will track."""
