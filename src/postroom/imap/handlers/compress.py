"""COMPRESS=DEFLATE (RFC 4978): both directions deflated after the tagged OK.

The handler only decides; the glue writes the OK uncompressed and then switches the
connection's deflate layer on (``After.COMPRESS``, :meth:`Connection.start_compression`),
as it does for STARTTLS. Over TLS the layer sits above it: compression inside TLS.
"""

from __future__ import annotations

from ..errors import Bad, No
from ..parser.base import Reader
from ..responses import After, Reply
from ..session import Session

CAPS = ("COMPRESS=DEFLATE",)
MECHANISMS = ("DEFLATE",)


def mechanism(r: Reader) -> str:
    """compress = "COMPRESS" SP algorithm; algorithm = atom (RFC 4978 §5)."""
    r.sp()
    name = r.keyword()
    r.end()
    return name


async def compress(s: Session, name: str) -> Reply:
    # §3: valid in the authenticated and selected states only (the command table's gate).
    if name not in MECHANISMS:
        raise Bad("Unknown compression mechanism")  # §3: BAD for an unknown algorithm
    if s.compressed:
        # §3/§4: one layer per connection; a second COMPRESS is refused with this code.
        raise No("Compression is already active", b"COMPRESSIONACTIVE")
    s.compressed = True
    return Reply("DEFLATE active", after=After.COMPRESS)
