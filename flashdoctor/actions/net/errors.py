"""The errors of everything that fetches (README "Downloads"): one family, all NetworkError (exit 4)."""

from __future__ import annotations

from flashdoctor.errors import NetworkError

# Where a machine without network (or with a broken DNS) goes instead: said once, in every such message.
OFFLINE_HINT = (
    "without network, put the wheel in a directory and run `flashdoctor install --wheelhouse DIR` "
    "(`flashdoctor build --wheelhouse DIR` on a machine that can build makes one); "
    "behind a proxy, set HTTPS_PROXY / NO_PROXY"
)


class DownloadError(NetworkError):
    """A fetch that failed for good (after retries, or at once when retrying cannot help)."""


class RefusedURL(DownloadError):
    """A URL the policy does not fetch: plain http, another scheme, or one that parses two ways."""


class OfflineError(DownloadError):
    """The host name could not be resolved: offline, or DNS is down. Never retried."""


class DiskError(DownloadError):
    """The bytes could not be written (disk full, file size limit, permissions)."""


class NotAWheelError(DownloadError):
    """The server answered with something that is not a zip archive (typically an HTML page)."""


class TooLarge(DownloadError):
    """A page or JSON document larger than the bound for such answers."""
