"""Unusual caller/route pairs through the real lake: first seen, deviations, the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from conftest import calico_doc

from l7analytics.adapters.files import NdjsonQuarantine
from l7analytics.adapters.lake import ParquetLake
from l7analytics.adapters.model_store import LakeModelStore
from l7analytics.adapters.settings_file import load_settings
from l7analytics.core.windows import Window
from l7analytics.jobs.pipeline import score, train
from l7analytics.jobs.ports import RawBatch

DAY0 = datetime(2026, 11, 16, tzinfo=UTC)
HISTORY = Window(DAY0, DAY0 + timedelta(days=4))
SCORED = Window(HISTORY.end, HISTORY.end + timedelta(days=1))

#: (caller namespace, caller pod name, dest service, method, path, hourly requests at noon)
ROUTES = [
    (
        "shop",
        "frontend-7d9f8c6b5-*",
        "cartservice",
        "POST",
        "/hipstershop.CartService/GetCart",
        400,
    ),
    ("shop", "frontend-7d9f8c6b5-*", "productcatalog", "GET", "/product/OLJCESPC7Z", 300),
    ("shop", "checkoutservice-69c8ff664b-*", "paymentservice", "POST", "/Charge", 60),
    ("shop", "checkoutservice-69c8ff664b-*", "emailservice", "POST", "/SendOrderConfirmation", 60),
    ("shop", "recommendationservice-6b4f9d8c7-*", "productcatalog", "GET", "/products", 120),
]


def doc(ns, pod, service, method, path, requests, end, **extra):
    return calico_doc(
        src_namespace=ns, src_name_aggr=pod, dest_service_name=service,
        dest_service_namespace="shop", dest_namespace="shop",
        dest_name_aggr=f"{service}-5c4b9d7f8-*", method=method, url=f"{service}{path}",
        count=int(requests), end_time=int(end.timestamp()), bytes_in=int(requests) * 200,
        bytes_out=int(requests) * 900, duration_mean=4_000_000, **extra,
    )  # fmt: skip


def normal_traffic(window: Window, seed: int = 0) -> list[dict]:
    """Diurnal traffic on ROUTES: one document per route per 15 minutes, Poisson counts."""
    rng = np.random.default_rng(seed)
    docs = []
    t = window.start + timedelta(minutes=15)
    while t <= window.end:
        diurnal = 0.3 + 0.7 * np.sin(np.pi * ((t.hour + t.minute / 60) / 24)) ** 2
        for ns, pod, service, method, path, noon in ROUTES:
            requests = rng.poisson(noon / 4 * diurnal) + 1
            docs.append(doc(ns, pod, service, method, path, requests, t))
        t += timedelta(minutes=15)
    return [d for d in docs if window.start.timestamp() <= d["end_time"] < window.end.timestamp()]


class ListSource:
    description = "test"

    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs

    def manifest(self):
        return {}

    def batches(self, window):
        import pyarrow as pa

        table = pa.Table.from_pylist(self.docs)
        yield RawBatch(table=table, raw_record=lambda i: "", origin=lambda i: f"doc {i}")


def ingest(lake: ParquetLake, window: Window, docs: list[dict], tmp_path) -> None:
    from l7analytics.jobs.pipeline import extract

    extract(ListSource(docs), lake, window, NdjsonQuarantine(tmp_path / "q.ndjson"))


SETTINGS = load_settings(overrides={
    "suppression": "none",
    "detectors": {"unusual_pair": {"min_training_rows": 50},
                  "restricted_url": {"crs_restricted_files": False}},
})  # fmt: skip


@pytest.fixture()
def trained(tmp_path):
    """A lake with four normal days and a model trained on them."""
    lake = ParquetLake(tmp_path / "lake")
    ingest(lake, HISTORY, normal_traffic(HISTORY), tmp_path)
    store = LakeModelStore(lake)
    (result,) = train(lake, HISTORY, SETTINGS, store)
    return lake, store, result


def score_day(lake, store, tmp_path, extra: list[dict], settings=SETTINGS, **kwargs):
    ingest(lake, SCORED, normal_traffic(SCORED, seed=1) + extra, tmp_path)
    result = score(lake, SCORED, settings, [], store, **kwargs)
    return [a for a in result.alerts if a.origin == "l7.unusual_pair"], result


def at(hour: int, minute: int = 30) -> datetime:
    return SCORED.start + timedelta(hours=hour, minutes=minute)


def test_normal_day_raises_nothing(trained, tmp_path):
    lake, store, _ = trained
    alerts, result = score_day(lake, store, tmp_path, [])
    assert alerts == []
    assert result.outcomes["l7.unusual_pair"].status == "ok"


def test_new_destination_for_a_known_caller_fires_and_explains(trained, tmp_path):
    lake, store, trained_result = trained
    lateral = [doc("shop", "recommendationservice-6b4f9d8c7-*", "paymentservice", "POST",
                   "/Charge", 40, at(6, m)) for m in (5, 20, 35)]  # fmt: skip
    alerts, _ = score_day(lake, store, tmp_path, lateral)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.record["caller"] == "shop/recommendationservice"
    assert alert.record["dest"] == "shop/paymentservice"
    assert alert.record["new_destination"] is True
    assert "first_seen_destination" in alert.record["verdicts"]
    assert alert.record["model_version"] == trained_result.version
    assert alert.record["window_start"] == "2026-11-20T06:00:00Z"
    assert alert.mitre_tactic == "Lateral Movement"
    assert "120 requests" in alert.description


def test_volume_spike_on_a_known_pair_fires_with_its_baseline(trained, tmp_path):
    lake, store, _ = trained
    spike = [doc("shop", "checkoutservice-69c8ff664b-*", "emailservice", "POST",
                 "/SendOrderConfirmation", 600, at(3, m)) for m in (5, 20, 35, 50)]  # fmt: skip
    alerts, _ = score_day(lake, store, tmp_path, spike)
    assert [a.record["caller"] for a in alerts] == ["shop/checkoutservice"]
    route = alerts[0].record["path_details"][0]
    assert route["observed"]["requests"] > 10 * route["baseline"]["requests"]
    assert "volume" in alerts[0].record["verdicts"]
    assert "expected from the caller" in alerts[0].description
    assert any(c["quantity"] == "caller_share" for c in route["contributions"])
    assert all(c["scale"] for c in route["contributions"])


def test_rollout_and_new_ids_are_not_new_pairs(trained, tmp_path):
    lake, store, _ = trained
    rollout = [
        doc(
            "shop",
            "frontend-5c4b9d7f8-*",
            "cartservice",
            "POST",
            "/hipstershop.CartService/GetCart",
            80,
            at(10, m),
        )
        for m in (5, 20)
    ]
    new_ids = [
        doc("shop", "frontend-5c4b9d7f8-*", "productcatalog", "GET", f"/product/{code}", 30, at(11))
        for code in ("66VCHSJNUP", "L9ECAV7KIM")
    ]
    alerts, _ = score_day(lake, store, tmp_path, rollout + new_ids)
    assert alerts == []


def test_tiny_first_seen_pairs_are_below_support(trained, tmp_path):
    lake, store, _ = trained
    once = [doc("shop", "recommendationservice-6b4f9d8c7-*", "paymentservice", "POST",
                "/Charge", 2, at(6))]  # fmt: skip
    alerts, _ = score_day(lake, store, tmp_path, once)
    assert alerts == []


def test_without_a_model_first_seen_still_works(tmp_path):
    lake = ParquetLake(tmp_path / "lake")
    ingest(lake, HISTORY, normal_traffic(HISTORY), tmp_path)
    lateral = [doc("shop", "recommendationservice-6b4f9d8c7-*", "paymentservice", "POST",
                   "/Charge", 40, at(6, m)) for m in (5, 20)]  # fmt: skip
    alerts, result = score_day(lake, LakeModelStore(lake), tmp_path, lateral)
    assert result.outcomes["l7.unusual_pair"].status == "degraded"
    assert "run `l7analytics train`" in result.outcomes["l7.unusual_pair"].message
    assert [a.record["new_destination"] for a in alerts] == [True]
    assert alerts[0].record["model_version"] is None


def test_allowlisted_pair_does_not_fire(trained, tmp_path):
    lake, store, _ = trained
    settings = load_settings(overrides={
        **SETTINGS.model_dump(mode="json"),
        "allowlist": [{"reason": "new payment flow", "src_workload": "shop/recommendationservice",
                       "dest": "shop/paymentservice"}],
    })  # fmt: skip
    lateral = [doc("shop", "recommendationservice-6b4f9d8c7-*", "paymentservice", "POST",
                   "/Charge", 40, at(6, m)) for m in (5, 20)]  # fmt: skip
    alerts, result = score_day(lake, store, tmp_path, lateral, settings=settings)
    assert alerts == []
    assert result.outcomes["l7.unusual_pair"].allowlisted_rows == 2


def test_rescoring_gives_the_same_ids_and_backfill_uses_the_model_of_its_time(trained, tmp_path):
    lake, store, first = trained
    lateral = [doc("shop", "recommendationservice-6b4f9d8c7-*", "paymentservice", "POST",
                   "/Charge", 40, at(6, m)) for m in (5, 20)]  # fmt: skip
    before, _ = score_day(lake, store, tmp_path, lateral)
    # A model trained later (on data up to the end of the scored day) must not be used
    # for that day: a backfill sees what a scheduled run saw.
    train(lake, Window(HISTORY.start, SCORED.end), SETTINGS, store)
    again, result = score_day(lake, store, tmp_path, lateral, run_mode="backfill")
    assert [a.id for a in again] == [a.id for a in before]
    assert result.outcomes["l7.unusual_pair"].model_version == first.version
    assert again[0].record["run_mode"] == "backfill"
