"""The archive connection: security policy (TLS, loopback-only plain http, credentials from the environment or
netrc, never from the config) and a dicomweb-client session whose errors read as McradErrors."""
from __future__ import annotations

import ipaddress
import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

from mcrad.errors import McradError

USER_VAR, PASSWORD_VAR = "MCRAD_PACS_USERNAME", "MCRAD_PACS_PASSWORD"


class PacsError(McradError):
    """The archive cannot be reached, refuses the credentials, or answers with an error."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_insecure_http: bool) -> str:
    """The DICOMweb root, refused when it would send credentials in clear text to another machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise McradError(f"prospective.pacs.url {url!r} is not an http(s) URL. Fix: give the DICOMweb root, e.g. "
                         "https://pacs.example.org/dicom-web.")
    if parts.username or parts.password:
        raise McradError("prospective.pacs.url carries credentials. Fix: remove them from the config; set "
                         f"{USER_VAR} and {PASSWORD_VAR} or use a netrc file.")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise McradError(f"prospective.pacs.url uses plain http to {parts.hostname}, not loopback: credentials and "
                         "images would travel unencrypted. Fix: use https, or set "
                         "prospective.pacs.allow_insecure_http: true on a trusted network.")
    return url.rstrip("/")


def credentials(url: str, netrc_file: str | None, environ: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(user, password) from MCRAD_PACS_USERNAME/MCRAD_PACS_PASSWORD, else from the netrc entry of the host."""
    env = os.environ if environ is None else environ
    user, password = env.get(USER_VAR), env.get(PASSWORD_VAR)
    if user or password:
        if not (user and password):
            raise McradError(f"only one of {USER_VAR} and {PASSWORD_VAR} is set. Fix: set both, or neither (netrc).")
        return user, password
    path = Path(netrc_file).expanduser() if netrc_file else Path(env.get("NETRC", "~/.netrc")).expanduser()
    if not path.is_file():
        if netrc_file:
            raise McradError(f"prospective.pacs.netrc {netrc_file} does not exist. Fix: correct the path.")
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(urlsplit(url).hostname or "")
    except netrc.NetrcParseError as exc:
        raise McradError(f"netrc file {path} cannot be parsed (line {exc.lineno}). Fix: correct it.") from None
    return (entry[0], entry[2]) if entry else None


def _session_class():
    import requests

    class TimedSession(requests.Session):
        """Every request with the configured timeout (dicomweb-client sets none)."""

        def __init__(self, timeout: float):
            super().__init__()
            self.timeout = timeout

        def request(self, *args, **kwargs):
            kwargs.setdefault("timeout", self.timeout)
            return super().request(*args, **kwargs)

    return TimedSession


def session(opts: dict, environ: dict[str, str] | None = None):
    """A requests session with the policy applied: TLS verified (CA bundle option), basic auth when given."""
    s = _session_class()(float(opts.get("timeout_s", 60)))
    s.trust_env = False  # no proxy or netrc picked up behind the policy's back
    ca = opts.get("ca_bundle")
    if ca and not Path(ca).is_file():
        raise McradError(f"prospective.pacs.ca_bundle {ca} does not exist. Fix: give the CA bundle file.")
    s.verify = ca or True
    auth = credentials(opts["url"], opts.get("netrc"), environ)
    if auth:
        s.auth = auth
    return s


def connect(opts: dict, environ: dict[str, str] | None = None):
    """A DICOMwebClient on prospective.pacs.url, after the security policy."""
    from dicomweb_client.api import DICOMwebClient

    url = check_url(opts["url"], opts["allow_insecure_http"])
    client = DICOMwebClient(url=url, session=session(opts, environ))
    client.set_http_retry_params(retry=False)
    return client


def describe(exc: Exception, what: str) -> PacsError:
    """A clear error for a failed DICOMweb call (never the credentials, never a study's identifiers)."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in (401, 403):
            return PacsError(f"PACS refused the credentials ({code}) during {what}. Fix: check {USER_VAR} and "
                             f"{PASSWORD_VAR} (or the netrc entry) and the account's DICOMweb rights.")
        return PacsError(f"PACS answered HTTP {code} during {what}. Fix: check the archive's log; the next poll "
                         "retries.")
    if isinstance(exc, requests.exceptions.SSLError):
        return PacsError(f"TLS verification of the PACS failed during {what}. Fix: give its CA in "
                         "prospective.pacs.ca_bundle.")
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return PacsError(f"PACS unreachable during {what} ({type(exc).__name__}). Fix: check that the archive is "
                         "up and prospective.pacs.url; the next poll completes the work.")
    return PacsError(f"DICOMweb {what} failed ({type(exc).__name__}). The next poll retries.")
