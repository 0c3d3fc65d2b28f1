"""Linking a GOG account and keeping its tokens, on real PostgreSQL and Redis against the
simulator: sealed at rest, refreshed once under a row lock, rotated keys, refusals."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography.fernet import Fernet
from pydantic import SecretStr

from sync_worker import cli, client, vault
from sync_worker.errors import ConfigurationError, GogLoginRejected, RelinkRequired
from sync_worker.platforms import gog
from sync_worker.platforms.gog import GogAuth
from sync_worker.simulator.gog import gog_user_id_for
from sync_worker.store import credentials
from sync_worker.sync.gog_tokens import access_token
from sync_worker.vault import Vault, reseal_all
from tests.conftest import assert_no_secret, assert_no_secret_at_rest, fetch_all, gog_login_code
from tests.conftest import cli as run_cli


def live_tokens(simulator) -> list[str]:
    """Every token the simulator has issued and still honours."""
    state = simulator.gog
    with state.lock:
        return [*state._access, *state._refresh]


def stored(runtime, library_id: str) -> credentials.SealedTokens:
    with runtime.pool.connection() as conn:
        sealed = credentials.load(conn, library_id)
    assert sealed is not None
    return sealed


def expire(runtime, library_id: str) -> None:
    """The stored access token is past its time (as an hour after linking)."""
    with runtime.pool.connection() as conn:
        conn.execute(
            "UPDATE platform_credentials SET access_expires_at = now() - interval '1 minute'"
            " WHERE library_id = %s",
            (library_id,),
        )


@pytest.fixture
def gog_sim(simulator):
    requests.post(f"{simulator.url}/_sim/reset", timeout=5).raise_for_status()
    return simulator


def test_linking_registers_the_account_and_seals_its_tokens(runtime, settings, gog_sim):
    user_id = gog_user_id_for(40, seed=51)
    library_id = client.link_gog_library(gog_login_code(settings, user_id))
    [(platform, platform_user_id, name, status)] = fetch_all(
        runtime,
        "SELECT platform, platform_user_id, display_name, sync_status FROM user_libraries",
    )
    assert (platform, platform_user_id, name, status) == (
        "gog",
        user_id,
        f"sim_{user_id}",
        "never_synced",
    )
    tokens = live_tokens(gog_sim)
    assert len(tokens) == 2  # the access and refresh tokens of this link
    assert_no_secret_at_rest(runtime, *tokens)  # sealed: no table or key holds one in clear
    opened = Vault.from_settings(runtime.settings)
    sealed = stored(runtime, library_id)
    assert {opened.open(sealed.access_token), opened.open(sealed.refresh_token)} == set(tokens)
    assert sealed.access_expires_at > datetime.now(UTC) + timedelta(minutes=55)

    again = client.link_gog_library(gog_login_code(settings, user_id))
    assert again == library_id  # already linked: the same library, with the new tokens
    assert opened.open(stored(runtime, library_id).refresh_token) not in tokens
    assert fetch_all(runtime, "SELECT count(*) FROM user_libraries") == [(1,)]


def test_a_code_gog_refuses_links_nothing(runtime, settings, gog_sim):
    code = gog_login_code(settings, gog_user_id_for(5, seed=52))
    client.link_gog_library(code)
    with pytest.raises(GogLoginRejected) as rejected:
        client.link_gog_library(code)  # spent
    assert code not in str(rejected.value)
    with pytest.raises(GogLoginRejected):
        client.link_gog_library("not-a-code")
    assert fetch_all(runtime, "SELECT count(*) FROM platform_credentials") == [(1,)]


def test_a_fresh_access_token_is_used_an_old_one_refreshed_once_and_committed_first(
    runtime, settings, gog_sim
):
    library_id = client.link_gog_library(gog_login_code(settings, gog_user_id_for(5, seed=53)))
    sealer = Vault.from_settings(runtime.settings)
    auth = GogAuth(runtime.settings)
    linked = sealer.open(stored(runtime, library_id).access_token)
    assert access_token(runtime.pool, sealer, auth, library_id) == linked
    assert gog_sim.gog.refreshes == 0

    expire(runtime, library_id)
    old_refresh = sealer.open(stored(runtime, library_id).refresh_token)
    got: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: got.append(access_token(runtime.pool, sealer, auth, library_id))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gog_sim.gog.refreshes == 1  # four at once: one refresh, the others waited for it
    assert len(set(got)) == 1 and got[0] != linked
    now_stored = stored(runtime, library_id)
    assert sealer.open(now_stored.access_token) == got[0]  # committed before it was handed out
    assert sealer.open(now_stored.refresh_token) != old_refresh


def test_a_refused_refresh_means_relink_and_keeps_what_is_stored(runtime, settings, gog_sim):
    user_id = gog_user_id_for(5, seed=54)
    library_id = client.link_gog_library(gog_login_code(settings, user_id))
    sealer, auth = Vault.from_settings(runtime.settings), GogAuth(runtime.settings)
    expire(runtime, library_id)
    before = stored(runtime, library_id)
    requests.post(f"{gog_sim.url}/_sim/gog/revoke/{user_id}", timeout=5).raise_for_status()
    with pytest.raises(RelinkRequired):
        access_token(runtime.pool, sealer, auth, library_id)
    assert stored(runtime, library_id) == before


def test_a_worker_dying_between_refresh_and_store_leaves_the_account_to_relink(
    runtime, settings, gog_sim
):
    """GOG spends the old refresh token when it answers: a process that dies before
    committing the new pair has lost it. Written down in docs/behaviour.md: the next
    refresh is refused (relink_required), the stored games stay."""
    library_id = client.link_gog_library(gog_login_code(settings, gog_user_id_for(5, seed=55)))
    sealer, auth = Vault.from_settings(runtime.settings), GogAuth(runtime.settings)
    expire(runtime, library_id)
    auth.refresh(sealer.open(stored(runtime, library_id).refresh_token))  # ...and then it died
    with pytest.raises(RelinkRequired):
        access_token(runtime.pool, sealer, auth, library_id)
    client.link_gog_library(gog_login_code(settings, gog_user_id_for(5, seed=55)))  # linked again
    assert access_token(runtime.pool, sealer, auth, library_id)


def test_keys_rotate_without_losing_a_token(runtime, settings, gog_sim):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    runtime.settings = runtime.settings.model_copy(update={"credentials_key": SecretStr(old)})
    try:
        library_id = client.link_gog_library(gog_login_code(settings, gog_user_id_for(5, seed=56)))
        before = Vault([old]).open(stored(runtime, library_id).refresh_token)
        both = Vault([new, old])
        assert reseal_all(runtime.pool, both) == 1
        assert Vault([new]).open(stored(runtime, library_id).refresh_token) == before
        with pytest.raises(RelinkRequired):  # the old key alone no longer opens it
            Vault([old]).open(stored(runtime, library_id).refresh_token)
    finally:
        runtime.settings = settings


def test_production_needs_the_key_and_development_keeps_a_local_one(settings, tmp_path):
    production = settings.model_copy(update={"sync_worker_env": "production"})
    with pytest.raises(ConfigurationError) as refused:
        Vault.from_settings(production)
    assert "CREDENTIALS_KEY must be set" in refused.value.message
    with pytest.raises(ConfigurationError):
        Vault(["not a key"])
    local = settings.model_copy(update={"sync_worker_home": tmp_path})
    sealed = Vault.from_settings(local).seal("r", "a", datetime.now(UTC))
    key_file = tmp_path / vault.LOCAL_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Vault.from_settings(local).open(sealed.refresh_token) == "r"  # the same key again
    keyed = settings.model_copy(
        update={"credentials_key": SecretStr(f"{vault.new_key()}, {vault.new_key()}")}
    )
    assert all(key in keyed.secrets for key in keyed.credentials_keys)  # the log masks each


def test_link_gog_from_a_terminal(runtime, settings, gog_sim, subprocess_env):
    """`sync-worker link gog`: the login URL, then the pasted address; JSON out. Production
    without CREDENTIALS_KEY: one line, exit 3, and the code is not spent."""
    user_id = gog_user_id_for(7, seed=57)
    code = gog_login_code(settings, user_id)
    pasted = f"https://embed.gog.com/on_login_success?origin=client&code={code}\n"
    production = {**subprocess_env, "SYNC_WORKER_ENV": "production"}
    refused = subprocess.run(
        [sys.executable, "-m", "sync_worker.cli", "link", "gog"],
        input=pasted, env=production, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 3
    assert refused.stderr.strip().splitlines() == [
        "sync-worker: configuration_error: CREDENTIALS_KEY must be set in production to handle"
        " GOG accounts' tokens."
    ]
    linked = subprocess.run(
        [sys.executable, "-m", "sync_worker.cli", "link", "gog"],
        input=pasted, env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert linked.returncode == 0, linked.stderr
    assert "auth?client_id=46899977096215655" in linked.stderr  # the login URL, for a browser
    library_id = json.loads(linked.stdout)["library_id"]
    assert fetch_all(
        runtime, "SELECT platform_user_id FROM user_libraries WHERE library_id = %s", library_id
    ) == [(user_id,)]
    for text in (linked.stdout + linked.stderr, refused.stdout + refused.stderr):
        assert_no_secret(text, "the CLI's output", *live_tokens(gog_sim))

    empty = run_cli(subprocess_env, "link", "gog", "--code", " ")
    assert empty.returncode == 2 and "no GOG login code" in empty.stderr
    key = run_cli(subprocess_env, "credentials", "new-key").stdout.strip()
    assert Fernet(key.encode())  # a usable key
    local = (settings.sync_worker_home / vault.LOCAL_KEY_FILE).read_text().strip()
    rotated = run_cli(
        {**subprocess_env, "CREDENTIALS_KEY": f"{key},{local}"}, "credentials", "rotate-key"
    )
    assert json.loads(rotated.stdout) == {"resealed": 1}
    assert Vault([key]).open(stored(runtime, library_id).refresh_token) in live_tokens(gog_sim)


def test_the_cli_knows_the_redirect_uri_without_loading_the_adapter():
    assert cli.GOG_REDIRECT_URI == gog.REDIRECT_URI
