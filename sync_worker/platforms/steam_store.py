"""The Steam store adapter: `appdetails`, one app per call, under the `steam_store` bucket."""

from __future__ import annotations

from ..settings import Settings
from .http import CallGate, PlatformHttp
from .store_details import StoreDetails, parse_app_details

STORE_BUCKET = "steam_store"


class SteamStore:
    """Store pages: no key, about 200 calls per 5 minutes per IP."""

    def __init__(self, settings: Settings, gate: CallGate | None = None) -> None:
        self._http = PlatformHttp(settings, settings.steam_store_base_url, STORE_BUCKET, gate)

    @property
    def calls(self) -> int:
        """Store calls made through this client so far."""
        return self._http.calls

    def app_details(self, app_id: str) -> StoreDetails | None:
        """The app's store details; None when it has no store page (delisted, region-locked)."""
        body = self._http.get("/api/appdetails", {"appids": app_id}, what="appdetails")
        return parse_app_details(app_id, body)
