import pytest

from etl.config import load_settings
from etl.errors import ConfigError


def test_defaults_without_a_file():
    settings = load_settings(None)
    assert settings.database_url.get_secret_value() == "sqlite:///chatsell.db"
    assert settings.match.attach_to_deals is True
    assert settings.notify.tags == ["notify_sales"]


def test_file_then_environment_wins(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text('[match]\nattach_to_deals = false\n[chat]\nsubdomain = "acme"\n')
    assert load_settings(path).match.attach_to_deals is False
    monkeypatch.setenv("CHATSELL_MATCH__ATTACH_TO_DEALS", "true")
    settings = load_settings(path)
    assert settings.match.attach_to_deals is True and settings.chat.subdomain == "acme"


def test_database_url_from_environment_and_override(monkeypatch):
    monkeypatch.setenv("CHATSELL_DATABASE_URL", "postgresql+psycopg://u:pw@h/db")
    assert load_settings(None).database_url.get_secret_value().endswith("@h/db")
    assert (
        load_settings(None, database_url="sqlite:///x.db").database_url.get_secret_value()
        == "sqlite:///x.db"
    )


def test_secrets_never_show_in_repr():
    settings = load_settings(None, database_url="postgresql+psycopg://u:hunter2@h/db")
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_bad_toml_names_file_and_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[match]\nattach_to_deals = \n")
    with pytest.raises(ConfigError, match=r"c\.toml: not valid TOML.*line 2"):
        load_settings(path)


def test_unknown_key_is_named_and_value_is_not_echoed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[match]\nattach_to_deal = "secret-ish-value"\n[phone]\npolicy = "sometimes"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "[match.attach_to_deal]" in message and "[phone.policy]" in message
    assert "secret-ish-value" not in message and "sometimes" not in message


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings("/nonexistent/chatsell.toml")
