"""GOG: what its OAuth and library endpoints are called with (see ../shared/design/GOG_API.md).

GOG has no public API for libraries; these are the endpoints its Galaxy client and every
open-source client (Lutris, Heroic, Playnite, lgogdownloader) use.
"""

from __future__ import annotations

#: The Galaxy client's OAuth credentials: public, and used by every open-source client.
CLIENT_ID = "46899977096215655"
CLIENT_SECRET = "9d85c43b1482497dbbce61f6e4aa173a433796eeae2ca8c5f6129f2dc4de46d9"  # noqa: S105
#: The redirect the open-source clients register (the login page ends there, code in the URL).
REDIRECT_URI = "https://embed.gog.com/on_login_success?origin=client"
