"""``tidings bench mqtt --smoke``: paho through the tidings broker's MQTT port and through
Debian's mosquitto (installed by scripts/test), QoS 0 and 1, side by side."""

from __future__ import annotations

import json

import pytest

from tidings.benchmarking import main
from tidings.benchmarking.mqtt import mosquitto_path, report

pytestmark = pytest.mark.timeout(180)


def test_mqtt_bench_smoke_measures_both_brokers(capsys):
    assert mosquitto_path() is not None, "Debian's mosquitto is needed (scripts/test installs it)"
    assert main(["mqtt", "--smoke", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for broker in ("tidings", "mosquitto"):
        for qos in ("qos0", "qos1"):
            row = res[broker][qos]
            assert row["received"] == res["messages"] == 300, (broker, qos)
            assert row["msgs_per_s"] > 0
            assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert res[broker]["qos1"]["acked_per_s"] > 0
        assert res[broker]["idle"]["connections"] == 20
        assert res[broker]["idle"]["bytes_per_connection"] >= 0
    text = report(res)
    assert "QoS 1 publish to PUBACK msg/s" in text and "KiB per idle conn" in text


def test_mqtt_bench_rejects_a_bad_repeat():
    with pytest.raises(SystemExit):
        main(["mqtt", "--smoke", "--repeat", "0"])
