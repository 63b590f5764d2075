"""Sends real Python exceptions with the `sentry_sdk` to Seismo for some wall-clock minutes,
as a Django-ish service would: a handful of failing code paths, each with local variables,
breadcrumbs, tags and a user. Run by bench/dictionary_live.sh, which watches how they are
stored.

Environment: SEISMO_DSN, MINUTES (default 4), RATE (events per second, default 20).
"""

import os
import random
import time

import sentry_sdk


class PaymentDeclined(Exception):
    pass


def apply_discount(order):
    coupon = order["coupon"]
    return order["total"] * (1 - order["discounts"][coupon])


def charge(order):
    attempt = order["attempt"]
    raise PaymentDeclined(f"card declined for order {order['id']} (attempt {attempt})")


def reserve_stock(order):
    items = order["items"]
    return items[len(items) + order["attempt"]]


def parse_quantity(order):
    return int(order["quantity"])


PATHS = [apply_discount, charge, reserve_stock, parse_quantity]


def one_event(rng):
    order = {
        "id": rng.randrange(100_000, 999_999),
        "total": round(rng.uniform(5, 500), 2),
        "coupon": rng.choice(["WINTER", "VIP", "FRIENDS"]),
        "discounts": {"SPRING": 0.1},
        "attempt": rng.randrange(1, 4),
        "items": [f"sku-{rng.randrange(1000)}" for _ in range(rng.randrange(1, 4))],
        "quantity": rng.choice(["two", "1O", ""]),
    }
    sentry_sdk.set_user({"id": str(rng.randrange(1, 50_000))})
    sentry_sdk.set_tag("worker", f"gunicorn-{rng.randrange(1, 9)}")
    sentry_sdk.add_breadcrumb(category="query", message=f"SELECT * FROM orders WHERE id = {order['id']}")
    try:
        rng.choice(PATHS)(order)
    except Exception as error:  # every path fails; that is the point
        sentry_sdk.capture_exception(error)


def local_variables_on():
    """The option that sends each frame's local variables: `data_collection` from
    sentry-sdk 3 on, `include_local_variables` before."""
    if int(sentry_sdk.VERSION.split(".")[0]) >= 3:
        return {"data_collection": {"stack_frame_variables": True}}
    return {"include_local_variables": True}


def main():
    sentry_sdk.init(
        dsn=os.environ["SEISMO_DSN"],
        release="shop@4.2.0",
        environment="production",
        traces_sample_rate=0,
        **local_variables_on(),
    )
    sentry_sdk.set_tag("region", "eu-west-1")
    rng = random.Random(7)
    minutes = float(os.environ.get("MINUTES", "4"))
    rate = float(os.environ.get("RATE", "20"))
    deadline = time.monotonic() + minutes * 60
    sent = 0
    while time.monotonic() < deadline:
        one_event(rng)
        sent += 1
        time.sleep(1 / rate)
    sentry_sdk.flush(timeout=30)
    print(f"sent {sent} events")


if __name__ == "__main__":
    main()
