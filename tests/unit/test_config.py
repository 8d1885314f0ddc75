"""Settings precedence: defaults < <data_dir>/pocketstack.toml < POCKETSTACK_* env < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketstack.config import load_settings


def write_toml(data_dir: Path, text: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "pocketstack.toml").write_text(text)


def test_defaults(tmp_path):
    s = load_settings(tmp_path, env={})
    assert s.port == 8800 and s.host == "127.0.0.1"
    assert s.data_dir == tmp_path.resolve()
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'pocketstack.db'}"
    assert s.base_url == "http://127.0.0.1:8800"


def test_toml_then_env_then_overrides(tmp_path):
    write_toml(tmp_path, 'port = 9000\nhost = "127.0.0.2"\n[identity]\ntoken_expiration = 100\n'
                         'token_cache_seconds = 5\n[database]\nurl = "sqlite:////tmp/x.db"\n')
    s = load_settings(tmp_path, env={})
    assert (s.port, s.host, s.identity.token_expiration) == (9000, "127.0.0.2", 100)
    assert s.identity.token_cache_seconds == 5 and s.database_url == "sqlite:////tmp/x.db"

    env = {"POCKETSTACK_PORT": "9100", "POCKETSTACK_IDENTITY__TOKEN_EXPIRATION": "200",
           "POCKETSTACK_DATABASE__URL": "postgresql+psycopg2://u:p@h/db"}
    s = load_settings(tmp_path, env=env)
    assert (s.port, s.host, s.identity.token_expiration) == (9100, "127.0.0.2", 200)
    assert s.database_url == "postgresql+psycopg2://u:p@h/db"

    s = load_settings(tmp_path, env=env, port=9200, host=None)  # None: flag not given
    assert (s.port, s.host) == (9200, "127.0.0.2")


def test_data_dir_from_env_and_flag(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_toml(a, "port = 9001\n")
    write_toml(b, "port = 9002\n")
    assert load_settings(None, env={"POCKETSTACK_DATA_DIR": str(a)}).port == 9001
    s = load_settings(b, env={"POCKETSTACK_DATA_DIR": str(a)})
    assert s.port == 9002 and s.data_dir == b.resolve()


def test_toml_cannot_move_the_data_dir(tmp_path):
    write_toml(tmp_path, 'data_dir = "/somewhere/else"\n')
    assert load_settings(tmp_path, env={}).data_dir == tmp_path.resolve()


def test_env_types_are_coerced(tmp_path):
    env = {"POCKETSTACK_BOOTSTRAP_DEMO": "false", "POCKETSTACK_DATABASE__ECHO": "yes",
           "POCKETSTACK_IDENTITY__TOKEN_CACHE_SECONDS": "0.5"}
    s = load_settings(tmp_path, env=env)
    assert s.bootstrap_demo is False and s.database.echo is True
    assert s.identity.token_cache_seconds == 0.5


@pytest.mark.parametrize("env, words", [
    ({"POCKETSTACK_PORT": "eighty"}, "POCKETSTACK_PORT"),
    ({"POCKETSTACK_BOOTSTRAP_DEMO": "maybe"}, "boolean"),
    ({"POCKETSTACK_DATABASE": "sqlite://"}, "section"),
])
def test_bad_env_is_a_clear_error(tmp_path, env, words):
    with pytest.raises(ValueError, match=words):
        load_settings(tmp_path, env=env)


def test_unrelated_env_is_ignored(tmp_path):
    s = load_settings(tmp_path, env={"POCKETSTACK_TEST_DATABASE_URL": "postgresql://x/y",
                                     "POCKETSTACK_PORT__X": "1", "HOME": "/root"})
    assert s.database_url.startswith("sqlite:///")


@pytest.mark.parametrize("text, words", [
    ("no_such_setting = 1\n", "no_such_setting"),
    ("identity = 3\n", "table"),
    ("[identity]\nnope = 1\n", "nope"),
])
def test_bad_toml_is_a_clear_error(tmp_path, text, words):
    write_toml(tmp_path, text)
    with pytest.raises(ValueError, match=words):
        load_settings(tmp_path, env={})


def test_public_url_and_wildcard_host(tmp_path):
    assert load_settings(tmp_path, env={}, host="0.0.0.0", port=8801).base_url == \
        "http://127.0.0.1:8801"
    s = load_settings(tmp_path, env={"POCKETSTACK_PUBLIC_URL": "https://cloud.example/"})
    assert s.base_url == "https://cloud.example"
