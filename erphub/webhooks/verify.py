"""Moved: kept only so older imports keep working.

The verdict vocabulary and the generic hmac check live in `erphub.connectors.webhooks`; the
Jiandaoyun check is the Jiandaoyun connector's `verify_webhook` (`erphub.connectors.jiandaoyun`).
"""

from erphub.connectors.jiandaoyun import (
    JDY_DELIVER_HEADER,
    JDY_SIGNATURE_HEADER,
    check_jiandaoyun,
    jiandaoyun_signature,
)
from erphub.connectors.webhooks import (
    HMAC_DELIVERY_HEADERS,
    HMAC_TIMESTAMP_HEADER,
    Checked,
    Verdict,
    check_hmac,
    hmac_signature,
)

__all__ = [
    "HMAC_DELIVERY_HEADERS",
    "HMAC_TIMESTAMP_HEADER",
    "JDY_DELIVER_HEADER",
    "JDY_SIGNATURE_HEADER",
    "Checked",
    "Verdict",
    "check_hmac",
    "check_jiandaoyun",
    "hmac_signature",
    "jiandaoyun_signature",
]
