from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from index import main_handler

from sms_stats.core import settings as settings_module
from sms_stats.core.errors import ConfigError
from sms_stats.core.settings import load_settings

from .conftest import SECRET_KEY, load_event


class TestDefaults:
    def test_given_empty_environment_when_loaded_then_contract_defaults(self) -> None:
        settings = load_settings({})
        assert settings.region == "ap-guangzhou"
        assert settings.timezone == "Asia/Shanghai"
        assert settings.app_ids == ()
        assert settings.sinks == ()
        assert settings.api_tokens == ()
        assert settings.endpoint is None
        assert settings.http_allowlist == ()

    def test_given_scf_region_when_loaded_then_it_is_the_default_region(self) -> None:
        assert load_settings({"TENCENTCLOUD_REGION": "ap-shanghai"}).region == "ap-shanghai"
        both = {"TENCENTCLOUD_REGION": "ap-shanghai", "SMS_STATS_REGION": "ap-beijing"}
        assert load_settings(both).region == "ap-beijing"

    def test_given_comma_lists_when_loaded_then_trimmed_tuples(self) -> None:
        settings = load_settings(
            {
                "SMS_STATS_APP_IDS": " 1400006874, 1400006875 ,",
                "SMS_STATS_API_TOKEN": " token-a-0123456789 ,token-b-0123456789",
            }
        )
        assert settings.app_ids == ("1400006874", "1400006875")
        tokens = [t.get_secret_value() for t in settings.api_tokens]
        assert tokens == ["token-a-0123456789", "token-b-0123456789"]
        assert settings.http_allowlist == ("1400006874", "1400006875")

    def test_given_star_http_app_ids_when_loaded_then_any_app(self) -> None:
        assert load_settings({"SMS_STATS_HTTP_APP_IDS": "*"}).http_allowlist == ("*",)


class TestErrors:
    @pytest.mark.parametrize(
        ("env", "words"),
        [
            (
                {"SMS_STATS_APP_IDS": "1400006874,12345"},
                "SMS_STATS_APP_IDS: '12345' is not an SmsSdkAppId ('1400' followed by 6 digits",
            ),
            ({"SMS_STATS_TIMEZONE": "Beijing"}, "SMS_STATS_TIMEZONE: unknown time zone"),
            ({"SMS_STATS_ENDPOINT": "127.0.0.1:9000"}, "SMS_STATS_ENDPOINT: must be scheme://"),
            ({"SMS_STATS_ENDPOINT": "http://h:9000/path"}, "SMS_STATS_ENDPOINT: must be only"),
            ({"SMS_STATS_REGION": "Guangzhou"}, "SMS_STATS_REGION: must be a region"),
            ({"SMS_STATS_TIMEOUT": "0"}, "SMS_STATS_TIMEOUT"),
            ({"SMS_STATS_HTTP_APP_IDS": "all"}, "SMS_STATS_HTTP_APP_IDS"),
            ({"SMS_STATS_LOG_LEVEL": "LOUD"}, "SMS_STATS_LOG_LEVEL"),
            ({"SMS_STATS_WEBHOOK_SECRET": "plain-secret"}, "SMS_STATS_WEBHOOK_SECRET: must be"),
        ],
    )
    def test_given_bad_setting_when_loaded_then_variable_and_rule_named(
        self, env: dict[str, str], words: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings(env)
        assert words in caught.value.message

    def test_given_bad_secret_when_reported_then_value_is_redacted(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings(
                {"SMS_STATS_WEBHOOK_SECRET": "whsec_!!notbase64", "SMS_STATS_TIMEOUT": "x"}
            )
        assert "notbase64" not in caught.value.message
        assert "<redacted>" in caught.value.message
        assert "SMS_STATS_TIMEOUT" in caught.value.message

    def test_given_missing_key_when_credentials_asked_then_names_the_variable(self) -> None:
        settings = load_settings({"TENCENTCLOUD_SECRETID": "AKIDx"})
        with pytest.raises(ConfigError, match="TENCENTCLOUD_SECRETKEY not set"):
            settings.credentials()

    def test_given_empty_token_when_credentials_asked_then_token_is_none(self) -> None:
        settings = load_settings(
            {
                "TENCENTCLOUD_SECRETID": "AKIDx",
                "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                "TENCENTCLOUD_SESSIONTOKEN": "",
            }
        )
        assert settings.credentials() == ("AKIDx", SECRET_KEY, None)


class TestConfigFile:
    def test_given_toml_file_when_loaded_then_env_overrides_it(self, tmp_path: Path) -> None:
        path = tmp_path / "sms_stats.toml"
        path.write_text(
            'SMS_STATS_APP_IDS = ["1400006874", "1400006875"]\n'
            'SMS_STATS_SINKS = ["file:out", "file:///tmp/other"]\n'
            'SMS_STATS_TIMEZONE = "UTC"\n',
            encoding="utf-8",
        )
        settings = load_settings(
            {"SMS_STATS_CONFIG": str(path), "SMS_STATS_TIMEZONE": "Asia/Tokyo"}
        )
        assert settings.app_ids == ("1400006874", "1400006875")
        assert settings.sinks == ("file:out", "file:///tmp/other")
        assert settings.timezone == "Asia/Tokyo"

    def test_given_unknown_key_in_file_when_loaded_then_error_lists_known_keys(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "sms_stats.toml"
        path.write_text('SMS_STATS_APPIDS = "1400006874"\n', encoding="utf-8")
        with pytest.raises(ConfigError, match="unknown keys SMS_STATS_APPIDS"):
            load_settings({"SMS_STATS_CONFIG": str(path)})

    def test_given_broken_toml_when_loaded_then_error_names_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "sms_stats.toml"
        path.write_text("SMS_STATS_APP_IDS = [", encoding="utf-8")
        with pytest.raises(ConfigError, match="not a readable TOML file"):
            load_settings({"SMS_STATS_CONFIG": str(path)})

    def test_given_missing_explicit_file_when_loaded_then_error(self) -> None:
        with pytest.raises(ConfigError, match="no such file"):
            load_settings({"SMS_STATS_CONFIG": "/nonexistent/sms_stats.toml"})


@pytest.mark.parametrize("value", ["1400006874 1400006875", "1400006874;1400006875", "14000068745"])
def test_given_app_ids_that_are_not_smssdkappids_when_settings_load_then_config_error(
    value: str,
) -> None:
    """The pattern must match the whole value: a typo'd separator is not an app id."""
    with pytest.raises(ConfigError, match="SMS_STATS_APP_IDS"):
        load_settings({"SMS_STATS_APP_IDS": value})


def test_given_empty_sms_stats_region_when_settings_load_then_tencentcloud_region_is_used() -> None:
    settings = load_settings({"SMS_STATS_REGION": "", "TENCENTCLOUD_REGION": "ap-beijing"})
    assert settings.region == "ap-beijing"


class TestSettingsEdges:
    @pytest.mark.parametrize(
        ("env", "words"),
        [
            ({"SMS_STATS_APP_IDS": "140000687"}, "SMS_STATS_APP_IDS"),
            ({"SMS_STATS_REGION": "guangzhou"}, "SMS_STATS_REGION: must be a region"),
            ({"SMS_STATS_ENDPOINT": "http://:9000"}, "SMS_STATS_ENDPOINT: must be scheme://"),
            ({"SMS_STATS_ENDPOINT": "http://u:pw@127.0.0.1:9000"}, "SMS_STATS_ENDPOINT: must be"),
            ({"SMS_STATS_MAX_ATTEMPTS": "0"}, "SMS_STATS_MAX_ATTEMPTS"),
            ({"SMS_STATS_MAX_BODY_BYTES": "255"}, "SMS_STATS_MAX_BODY_BYTES"),
        ],
    )
    def test_given_out_of_rule_value_when_loaded_then_config_error_names_variable(
        self, env: dict[str, str], words: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings(env)
        assert words in caught.value.message

    def test_given_empty_environment_when_loaded_then_documented_numeric_defaults(self) -> None:
        settings = load_settings({})
        assert (settings.timeout, settings.max_attempts, settings.rate_limit) == (5.0, 3, 10.0)
        assert (settings.concurrency, settings.max_span_hours) == (4, 744)
        assert (settings.max_backfill_hours, settings.max_app_ids) == (8784, 20)
        assert (settings.max_body_bytes, settings.log_level) == (65536, "INFO")

    def test_given_empty_variables_when_loaded_then_defaults_are_used(self) -> None:
        """README: an empty value in serverless.yml means "use the default"."""
        empty = (
            "SMS_STATS_TIMEOUT",
            "SMS_STATS_ENDPOINT",
            "SMS_STATS_LOG_LEVEL",
            "SMS_STATS_REGION",
        )
        settings = load_settings(dict.fromkeys(empty, ""))
        assert (settings.timeout, settings.endpoint) == (5.0, None)
        assert (settings.log_level, settings.region) == ("INFO", "ap-guangzhou")

    def test_given_lower_case_log_level_when_loaded_then_accepted_upper_case(self) -> None:
        assert load_settings({"SMS_STATS_LOG_LEVEL": "debug"}).log_level == "DEBUG"

    def test_given_empty_secret_id_when_credentials_asked_then_names_the_variable(self) -> None:
        settings = load_settings(
            {"TENCENTCLOUD_SECRETID": "", "TENCENTCLOUD_SECRETKEY": SECRET_KEY}
        )
        with pytest.raises(ConfigError, match="TENCENTCLOUD_SECRETID not set"):
            settings.credentials()

    def test_given_toml_value_and_empty_variable_when_loaded_then_file_value_kept(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "sms_stats.toml"
        path.write_text('SMS_STATS_TIMEZONE = "UTC"\n', encoding="utf-8")
        settings = load_settings({"SMS_STATS_CONFIG": str(path), "SMS_STATS_TIMEZONE": ""})
        assert settings.timezone == "UTC"

    def test_given_file_bundled_next_to_the_package_when_loaded_then_it_is_read(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The deployment puts sms_stats.toml next to index.py, one level above sms_stats/."""
        package = tmp_path / "package"
        (package / "sms_stats").mkdir(parents=True)
        (package / "sms_stats.toml").write_text('SMS_STATS_TIMEZONE = "UTC"\n', encoding="utf-8")
        monkeypatch.setattr(settings_module, "__file__", str(package / "sms_stats" / "settings.py"))
        assert load_settings({}).timezone == "UTC"

    def test_given_file_at_the_checkout_root_when_loaded_then_the_cli_reads_what_ships(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """In a checkout the package is under src/; the file beside index.py is the one
        `make package` bundles, so the local CLI reads that one, not src/sms_stats.toml."""
        (tmp_path / "src" / "sms_stats").mkdir(parents=True)
        (tmp_path / "index.py").write_text("", encoding="utf-8")
        (tmp_path / "sms_stats.toml").write_text('SMS_STATS_TIMEZONE = "UTC"\n', encoding="utf-8")
        path = tmp_path / "src" / "sms_stats" / "settings.py"
        monkeypatch.setattr(settings_module, "__file__", str(path))
        assert load_settings({}).timezone == "UTC"

    def test_given_api_token_list_with_bad_item_in_toml_when_loaded_then_tokens_redacted(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "sms_stats.toml"
        path.write_text('SMS_STATS_API_TOKEN = ["tok-SENTINEL-41", 5]\n', encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings({"SMS_STATS_CONFIG": str(path)})
        assert "SMS_STATS_API_TOKEN" in caught.value.message
        assert "tok-SENTINEL-41" not in caught.value.message

    def test_given_endpoint_with_trailing_slash_when_job_runs_then_records_fetched(
        self, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]
    ) -> None:
        monkeypatch.setenv("SMS_STATS_ENDPOINT", scf_env["SMS_STATS_ENDPOINT"] + "/")
        assert load_settings().endpoint == scf_env["SMS_STATS_ENDPOINT"]
        result = main_handler(load_event("timer.json"), context)
        assert len(result["records"]) == 2


def test_given_sink_urls_with_keys_when_settings_are_shown_then_no_url_appears() -> None:
    token = "9f3c2a7b5e1d4c6f8a0b2d4e6f8a1c3e"
    settings = load_settings(
        {"SMS_STATS_SINKS": f"https://oapi.dingtalk.com/robot/send?access_token={token}"}
    )
    assert settings.sinks  # still there to use
    for shown in (repr(settings), str(settings)):
        assert token[:8] not in shown
