"""Delivery reports pushed back by the SMS providers (decision 0082): each is recorded once on the
message the provider accepted under that reference, and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter as Metric
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yuyue.clock import clock
from yuyue.models import Message
from yuyue.ops.logging import log

SMS_REPORTS = Metric(
    "yuyue_sms_reports_total",
    "Delivery reports pushed by SMS providers, by outcome",
    ["provider", "outcome"],  # delivered | undelivered | duplicate | unknown | malformed | refused
)


@dataclass(frozen=True)
class DeliveryReport:
    """One handset delivery report, whichever provider pushed it."""

    provider_ref: str  # Aliyun BizId, Tencent SerialNo (`sid`)
    delivered: bool
    code: str | None
    detail: str | None
    reported_at: datetime | None


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


async def record_reports(
    session: AsyncSession, provider: str, reports: Sequence[DeliveryReport]
) -> Counter[str]:
    """Record each report on the message the provider accepted under that reference, in the
    caller's transaction. Only a message without a report takes one (a conditional `UPDATE`), so a
    report pushed twice, even by two requests at once, is recorded once. Returns the outcomes:
    `delivered`, `undelivered`, `duplicate` (the message has its report already) and `unknown` (no
    message of this provider has the reference: ignored)."""
    now = clock.now()
    outcomes: Counter[str] = Counter()
    for report in reports:
        matched = (Message.provider == provider, Message.provider_ref == report.provider_ref)
        status = "delivered" if report.delivered else "undelivered"
        rows = (
            await session.execute(
                update(Message)
                .where(*matched, Message.delivery_status.is_(None))
                .values(
                    delivery_status=status,
                    delivery_code=_clip(report.code, 100),
                    delivery_detail=_clip(report.detail, 200),
                    delivery_reported_at=report.reported_at,
                    delivery_received_at=now,
                    updated_at=now,
                )
                .returning(Message.id, Message.kind, Message.phone_masked)
                .execution_options(synchronize_session=False)
            )
        ).all()
        if rows:
            outcomes[status] += 1
            if not report.delivered:  # the masked number only, as everywhere in the logs
                for row in rows:
                    log.warning(
                        "sms_undelivered",
                        provider=provider,
                        message=row.id,
                        kind=row.kind,
                        phone=row.phone_masked,
                        code=report.code,
                    )
            continue
        known = (await session.execute(select(Message.id).where(*matched).limit(1))).first()
        outcomes["duplicate" if known else "unknown"] += 1
    return outcomes


def count_reports(provider: str, outcomes: Counter[str]) -> None:
    """The metric and a log line, once the reports are committed (or refused)."""
    for outcome, n in outcomes.items():
        SMS_REPORTS.labels(provider=provider, outcome=outcome).inc(n)
    if outcomes.get("unknown"):
        log.warning("sms_reports_unknown", provider=provider, n=outcomes["unknown"])
    log.info("sms_reports", provider=provider, **dict(outcomes))
