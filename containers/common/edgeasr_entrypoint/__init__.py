"""The uniform entrypoint shared by every edgeasr backend image.

A job spec comes in (JSON), timestamped events and raw transcripts go out. The
entrypoint never normalizes text or scores: that is the host's job, done once,
the same way for every backend. See containers/README.md for the contract.
"""

from .contract import CONTRACT_VERSION  # noqa: F401  (re-exported: the package's version of the contract)
