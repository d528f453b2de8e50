"""normalize_table: raw Calico documents -> typed lake records, nothing dropped silently."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from conftest import T0, calico_doc, make_records

from l7analytics.core.normalize import normalize_table
from l7analytics.core.schema import L7_SCHEMA, TIMESTAMP, UNLOGGED_SCHEMA


def normalize(docs):
    return normalize_table(pa.Table.from_pylist(docs))


def test_output_schema_and_derived_columns():
    batch = normalize(
        [
            calico_doc(
                url="paymentservice:50051/hipstershop.PaymentService/Charge",
                src_name_aggr="checkoutservice-69c8ff664b-*",
                dest_name_aggr="paymentservice-bbcbdc6b6-*",
                dest_service_name="paymentservice",
                count=31,
            )
        ]
    )
    assert batch.rejected_rows == []
    assert batch.records.schema.equals(L7_SCHEMA)
    row = batch.records.to_pylist()[0]
    assert row["count"] == 31
    assert row["src_workload"] == "shop/checkoutservice"
    assert row["dest_workload"] == "shop/paymentservice"
    assert row["dest"] == "shop/paymentservice"
    assert row["url_authority"] == "paymentservice:50051"
    assert row["url_path"] == "/hipstershop.PaymentService/Charge"
    assert row["path_template"] == "/hipstershop.PaymentService/Charge"


def test_times_are_utc_timestamps():
    records = make_records([{"end_time": T0 + 600, "start_time": T0 + 300}])
    assert records.schema.field("end_time").type == TIMESTAMP
    assert records.schema.field("start_time").type == TIMESTAMP
    row = records.to_pylist()[0]
    assert row["end_time"] == datetime(2026, 11, 20, 5, 10, tzinfo=UTC)
    assert row["start_time"] == datetime(2026, 11, 20, 5, 5, tzinfo=UTC)
    assert row["end_time"].utcoffset().total_seconds() == 0


def test_missing_start_time_defaults_to_one_flush_interval():
    batch = normalize([calico_doc(start_time=None)])
    assert batch.rejected_rows == []
    row = batch.records.to_pylist()[0]
    assert (row["end_time"] - row["start_time"]).total_seconds() == 300


def test_times_and_counts_given_as_text_are_accepted():
    batch = normalize([calico_doc(end_time=str(T0 + 300), start_time=str(T0), count="12")])
    assert batch.rejected_rows == []
    row = batch.records.to_pylist()[0]
    assert row["count"] == 12
    assert row["end_time"] == datetime(2026, 11, 20, 5, 5, tzinfo=UTC)


def test_dash_and_empty_string_read_as_missing():
    batch = normalize(
        [
            calico_doc(
                user_agent="-",
                method="",
                src_namespace="-",
                src_name_aggr="pub",
                dest_service_name="",
                dest_service_namespace="-",
                dest_service_port="-",
                type="-",
                response_code="-",
            )
        ]
    )
    assert batch.rejected_rows == []
    row = batch.records.to_pylist()[0]
    for name in (
        "user_agent",
        "method",
        "src_namespace",
        "dest_service_name",
        "dest_service_namespace",
        "dest_service_port",
        "type",
        "response_code",
        "response_status",
    ):
        assert row[name] is None, name
    assert row["src_workload"] == "-/pub"
    # No Service: the destination is the workload.
    assert row["dest"] == "shop/productcatalog"


def test_destination_falls_back_to_url_authority():
    batch = normalize(
        [
            calico_doc(
                dest_name_aggr="-",
                dest_namespace="-",
                dest_type="-",
                dest_service_name="-",
                dest_service_namespace="-",
                url="frontend/cart",
            )
        ]
    )
    row = batch.records.to_pylist()[0]
    assert row["dest_workload"] is None
    assert row["dest"] == "frontend"


@pytest.mark.parametrize(
    ("code", "text", "status"),
    [("200", "200", 200), ("404", "404", 404), (503, "503", 503), ("NR", "NR", None)],
)
def test_response_code_kept_as_text_with_numeric_status(code, text, status):
    batch = normalize([calico_doc(response_code=code)])
    assert batch.rejected_rows == []
    assert batch.records.schema.field("response_code").type == pa.string()
    assert batch.records.schema.field("response_status").type == pa.int16()
    row = batch.records.to_pylist()[0]
    assert row["response_code"] == text
    assert row["response_status"] == status


def test_tcp_only_record_has_no_url_parts():
    batch = normalize([calico_doc(method="", url="", response_code="")])
    row = batch.records.to_pylist()[0]
    assert row["url"] is None
    assert row["url_path"] is None
    assert row["path_template"] is None
    assert row["response_status"] is None


def test_unknown_fields_tolerated_and_dropped():
    batch = normalize([calico_doc(tenant="acme", latency_p99=7, labels={"app": "x"}, tags=[1])])
    assert batch.rejected_rows == []
    assert batch.records.num_rows == 1
    assert "tenant" not in batch.records.column_names
    assert "labels" not in batch.records.column_names


def test_calico_324_fields_accepted():
    extra = {
        "protocol": "HTTP",
        "protocol_version": "1.1",
        "collector_type": "ebpf",
        "collector_name": "l7-collector",
        "tls_sni": "api.example.com",
        "tls_version": "TLSv1.3",
        "tls_cipher_suite": "TLS_AES_128_GCM_SHA256",
    }
    batch = normalize([calico_doc(**extra)])
    assert batch.rejected_rows == []
    row = batch.records.to_pylist()[0]
    for name, value in extra.items():
        assert row[name] == value


def test_documents_without_324_fields_have_them_null():
    row = normalize([calico_doc()]).records.to_pylist()[0]
    assert row["protocol"] is None
    assert row["tls_sni"] is None


def test_elasticsearch_hits_are_unwrapped():
    docs = [
        {
            "_index": "tigera_secure_ee_l7.cluster.x",
            "_id": str(i),
            "_source": calico_doc(count=i + 2, url=f"frontend/product/OLJCESPC{i}Z"),
        }
        for i in range(3)
    ]
    batch = normalize(docs)
    assert batch.rejected_rows == []
    assert batch.records.column("count").to_pylist() == [2, 3, 4]
    assert set(batch.records.column("path_template").to_pylist()) == {"/product/{id}"}


def test_unlogged_records_kept_apart():
    overflow = calico_doc(
        type="unlogged",
        count=750,
        host="node-2",
        url="",
        method="",
        response_code="",
        src_name_aggr="",
        src_namespace="",
        dest_name_aggr="",
        dest_namespace="",
    )
    batch = normalize([calico_doc(count=3), overflow, calico_doc(count=4)])
    assert batch.rejected_rows == []
    assert batch.records.column("count").to_pylist() == [3, 4]
    assert batch.unlogged.schema.equals(UNLOGGED_SCHEMA)
    assert batch.unlogged.to_pylist() == [
        {
            "start_time": datetime(2026, 11, 20, 5, 0, tzinfo=UTC),
            "end_time": datetime(2026, 11, 20, 5, 5, tzinfo=UTC),
            "host": "node-2",
            "cluster": "cluster",
            "count": 750,
        }
    ]


def test_rejections_report_row_and_reason():
    docs = [
        calico_doc(count=1),
        calico_doc(end_time=None),
        calico_doc(count=-3),
        calico_doc(count=None),
        calico_doc(end_time=123),  # not epoch seconds of this century
        calico_doc(start_time=T0 + 3600),  # after end_time
        calico_doc(count=2),
    ]
    batch = normalize(docs)
    assert batch.records.column("count").to_pylist() == [1, 2]
    assert batch.rejected_rows == [1, 2, 3, 4, 5]
    assert batch.reasons == [
        "end_time is missing",
        "count is negative or above 2**32 (4294967296)",
        "count is missing",
        "end_time is not epoch seconds",
        "start_time is after end_time or not a flush window",
    ]


def test_non_numeric_count_rejected():
    # Text columns (as a line-by-line JSON parse produces) with one bad value.
    batch = normalize([calico_doc(count="7"), calico_doc(count="abc"), calico_doc(count="-")])
    assert batch.records.column("count").to_pylist() == [7]
    assert batch.rejected_rows == [1, 2]
    assert batch.reasons == ["count is not an integer", "count is missing"]


def test_fractional_count_rejected():
    batch = normalize([calico_doc(count=2.5), calico_doc(count=3.0)])
    assert batch.rejected_rows == [0]
    assert batch.reasons == ["count is not an integer"]
    assert batch.records.column("count").to_pylist() == [3]


def test_non_numeric_port_rejected_with_its_name():
    batch = normalize([calico_doc(dest_port_num="http"), calico_doc(dest_port_num="80")])
    assert batch.rejected_rows == [0]
    assert batch.reasons == ["dest_port_num is not an integer"]


def test_rejected_and_kept_rows_add_up():
    docs = [calico_doc(count=i % 3 - 1) for i in range(30)]  # -1, 0, 1, ...
    batch = normalize(docs)
    assert batch.records.num_rows + len(batch.rejected_rows) == len(docs)
    assert len(batch.rejected_rows) == 10


def test_empty_table():
    batch = normalize_table(pa.table({"end_time": pa.array([], pa.int64())}))
    assert batch.records.num_rows == 0
    assert batch.records.schema.equals(L7_SCHEMA)
    assert batch.rejected_rows == []
