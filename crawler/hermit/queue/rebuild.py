"""Request objects rebuilt from decoded queue entries, without escaping URLs twice.

``Request(url)`` runs the URL through w3lib's ``safe_url_string``, more than half of
what building a request costs. A queued URL is ``request.url`` of the request that
was queued, already escaped, and escaping is idempotent, so doing it again changes
nothing. Entries can come from elsewhere, though (a hand-written seed, garbage), so
the URL is only taken as it is when it has a form ``safe_url_string`` provably leaves
unchanged (:data:`VERBATIM_URL`, property-tested against w3lib): a lowercase scheme
and host, an optional port (1-65535), then path and query of URL-safe ASCII. Any other URL
goes through ``Request()``'s own escaping.

Everything else about the request is built by the request class's own ``__init__``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from scrapy import Request

if TYPE_CHECKING:
    from scrapy import Spider

# Path and query characters safe_url_string never escapes (no quote, bracket,
# backslash, space, '#' or non-ASCII), a lowercase host without user info or
# brackets, and a query only after a path, never empty (a trailing '?' is dropped,
# a path added before a query).
_URL_SAFE = r"A-Za-z0-9\-._~!$&()*+,;=:@/%"
VERBATIM_URL = re.compile(
    r"[a-z][a-z0-9+.\-]*://[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)*"
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    rf"(?:/[{_URL_SAFE}]*(?:\?[{_URL_SAFE}?]+)?)?"
)

_SET_URL = Request._set_url
_VERBATIM_CLASSES: dict[type, type] = {}


def _set_url_verbatim(self: Request, url: str) -> None:
    self._url = url  # VERBATIM_URL matched: safe_url_string would return it unchanged


def _verbatim_class(cls: type[Request]) -> type[Request]:
    """*cls* with a ``_set_url`` that keeps the URL, and the same instance layout."""
    verbatim = _VERBATIM_CLASSES.get(cls)
    if verbatim is None:
        verbatim = _VERBATIM_CLASSES[cls] = type(
            cls.__name__, (cls,), {"__slots__": (), "_set_url": _set_url_verbatim, "__module__": cls.__module__}
        )
    return verbatim


def build_request(cls: type[Request], data: dict[str, Any], spider: Spider | None) -> Request:
    """``cls(**data)`` as ``scrapy.utils.request.request_from_dict`` builds it: only
    the class's ``attributes``, callback and errback looked up on *spider* by name."""
    kwargs = {key: value for key, value in data.items() if key in cls.attributes}
    for name in ("callback", "errback"):
        method = data.get(name)
        if method and spider is not None:
            try:
                kwargs[name] = getattr(spider, str(method))
            except AttributeError:
                raise ValueError(f"Method {str(method)!r} not found in: {spider}") from None
    url = kwargs.get("url")
    if cls._set_url is not _SET_URL or not isinstance(url, str) or not VERBATIM_URL.fullmatch(url):
        return cls(**kwargs)
    # Created as cls (so Scrapy's live-object tracking counts it as one), initialised
    # as the verbatim subclass, then cls again.
    request = cls.__new__(cls)
    request.__class__ = _verbatim_class(cls)
    try:
        request.__init__(**kwargs)
    finally:
        request.__class__ = cls
    return request
