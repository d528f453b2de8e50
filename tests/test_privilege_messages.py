"""Elasticsearch's 403 reasons turned into one line naming the missing privilege (the real
servers' answers are checked end to end in tests/integration/test_es_privileges.py)."""

from __future__ import annotations

import pytest

from l7analytics.adapters.elasticsearch.connection import privilege_message

HOST = "https://es:9200"


@pytest.mark.parametrize("reason, expected", [
    (  # 8.x, index privilege, the action has brackets of its own
        "action [indices:data/write/bulk[s]] is unauthorized for user [job] with effective "
        "roles [r] on indices [l7-anomaly-alerts], this action is granted by the index "
        "privileges [create_doc,create,delete,index,write,all]",
        "the user job lacks the index privilege create_doc (or create, delete, index, write, "
        "all) on l7-anomaly-alerts (action indices:data/write/bulk[s])",
    ),
    (  # 7.17, cluster privilege
        "action [indices:admin/index_template/put] is unauthorized for user [job] with roles "
        "[r], this action is granted by the cluster privileges [manage_index_templates,manage,all]",
        "the user job lacks the cluster privilege manage_index_templates (or manage, all) "
        "(action indices:admin/index_template/put)",
    ),
    (  # an API key, no "granted by" part
        "action [indices:admin/create] is unauthorized for API key id [k1] of user [job] on "
        "indices [x]",
        "the API key id k1 lacks a privilege on x (action indices:admin/create)",
    ),
])  # fmt: skip
def test_reasons_become_one_line_naming_privilege_and_index(reason, expected):
    message = privilege_message(HOST, "writing alerts", reason)
    assert message == f"{HOST}: no privilege for writing alerts: {expected}"


@pytest.mark.parametrize("reason", ["", "something else entirely [with] brackets"])
def test_unknown_reasons_are_kept(reason):
    message = privilege_message(HOST, "counting", reason)
    assert message.startswith(f"{HOST}: no privilege for counting: ")
    assert (reason or "HTTP 403 without detail") in message and "\n" not in message
