"""Webhook signatures follow Standard Webhooks; retries back off and stop after the window."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.projector.webhooks import Retries, new_secret, signed_headers

BODY = b'{"type":"com.metering.credits.threshold_crossed.v1"}'


def test_a_signature_is_hmac_sha256_of_id_timestamp_and_body_with_the_decoded_secret() -> None:
    secret = new_secret()
    at = datetime(2026, 12, 3, 10, 0, 5, tzinfo=UTC)

    headers = signed_headers(secret, "credits:org-1:x:75:1", BODY, at)

    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = b"credits:org-1:x:75:1." + str(int(at.timestamp())).encode() + b"." + BODY
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers == {
        "content-type": "application/json",
        "webhook-id": "credits:org-1:x:75:1",
        "webhook-timestamp": "1796292005",
        "webhook-signature": f"v1,{expected}",
    }


def test_a_receiver_verifies_it_with_the_standard_library_and_refuses_a_changed_body() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "msg-1", BODY, datetime.now(UTC))

    assert Webhook(secret).verify(BODY, headers) == {
        "type": "com.metering.credits.threshold_crossed.v1"
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"v1", b"v2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_each_secret_is_new_and_in_the_whsec_form() -> None:
    secrets = {new_secret() for _ in range(50)}

    assert len(secrets) == 50
    assert all(len(base64.b64decode(s.removeprefix("whsec_"))) == 24 for s in secrets)


def test_retries_wait_four_times_longer_each_time_up_to_the_longest_wait() -> None:
    retries = Retries(first_s=5, longest_s=3600, window_s=86_400)
    created = datetime(2026, 12, 3, tzinfo=UTC)

    waits = [
        (retries.next_attempt(n, created, created) - created).total_seconds()  # type: ignore[operator]
        for n in range(1, 9)
    ]

    assert waits == [5, 20, 80, 320, 1280, 3600, 3600, 3600]


def test_a_delivery_is_not_retried_past_its_window() -> None:
    retries = Retries(first_s=5, longest_s=3600, window_s=86_400)
    created = datetime(2026, 12, 3, tzinfo=UTC)

    almost = created + timedelta(hours=23)
    assert retries.next_attempt(20, created, almost) == almost + timedelta(hours=1)
    assert retries.next_attempt(20, created, almost + timedelta(seconds=1)) is None
