"""Drives a running `seismo serve` with real clients, in real time, the way a new user
tries it (`bench/live_detection.sh` starts Seismo and runs this):

* fresh: a Sentry SDK (sentry-sdk) sends 2 errors/s over three exception types for
  FRESH_MINUTES, then a fourth type adds 40/s (x20 the project's rate) for BURST_MINUTES.
* services: two OpenTelemetry SDK services (opentelemetry-sdk, OTLP/HTTP exporter) send
  50 spans/s with 1 % failed for RATE_MINUTES; then `main` fails 30 % at the same rate and
  `control` doubles to 100 spans/s, still at 1 %, for CHANGE_MINUTES.

Then it waits for the detector to decide the last minute and prints every incident the API
lists, per project: what a person would see.
"""

import json
import os
import random
import sys
import threading
import time
import urllib.request

import sentry_sdk
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

BASE = os.environ["SEISMO_BASE"]
TOKEN = os.environ["SEISMO_TOKEN"]
FRESH_DSN = os.environ["FRESH_DSN"]
FRESH_ID = os.environ["FRESH_ID"]
SERVICES_KEY = os.environ["SERVICES_KEY"]
SERVICES_ID = os.environ["SERVICES_ID"]
OTLP_ENDPOINT = os.environ["OTLP_ENDPOINT"]
FRESH_MINUTES = float(os.environ.get("FRESH_MINUTES", "6"))
BURST_MINUTES = float(os.environ.get("BURST_MINUTES", "3"))
RATE_MINUTES = float(os.environ.get("RATE_MINUTES", "12"))
CHANGE_MINUTES = float(os.environ.get("CHANGE_MINUTES", "4"))


class CartError(Exception):
    pass


class PaymentError(Exception):
    pass


class StockError(Exception):
    pass


class SearchIndexCorrupt(Exception):
    pass


def paced(per_second, seconds, send):
    """Calls send(i) per_second times a second for `seconds`, spread over each second."""
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        target = int((time.monotonic() - start) * per_second)
        while sent < target:
            send(sent)
            sent += 1
        time.sleep(0.01)
    return sent


def raise_and_capture(error_type, message):
    try:
        raise error_type(message)
    except error_type:
        sentry_sdk.capture_exception()


def fresh_project():
    sentry_sdk.init(
        dsn=FRESH_DSN,
        release="shop@1.4.0",
        environment="production",
        server_name="shop-1",
        transport_queue_size=10_000,
    )
    kinds = [CartError, PaymentError, StockError]
    log(f"fresh: 2 errors/s over three types for {FRESH_MINUTES} min")
    paced(2, FRESH_MINUTES * 60, lambda i: raise_and_capture(kinds[i % 3], f"case {i % 7}"))
    log(f"fresh: a fourth type adds 40/s for {BURST_MINUTES} min")
    burst = threading.Thread(
        target=paced,
        args=(40, BURST_MINUTES * 60, lambda i: raise_and_capture(SearchIndexCorrupt, "shard 3")),
    )
    burst.start()
    paced(2, BURST_MINUTES * 60, lambda i: raise_and_capture(kinds[i % 3], f"case {i % 7}"))
    burst.join()
    sentry_sdk.flush(timeout=30)
    log("fresh: done")


def tracer_for(service):
    provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                        "service.version": "2.3.1"}))
    exporter = OTLPSpanExporter(endpoint=f"{OTLP_ENDPOINT}/v1/traces",
                                headers={"x-seismo-key": SERVICES_KEY})
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000,
                                                   max_queue_size=20_000))
    return provider, provider.get_tracer("live-detection")


def request(tracer, failing_share, rng):
    with tracer.start_as_current_span("GET /api/orders", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.request.method", "GET")
        if rng.random() < failing_share:
            try:
                raise TimeoutError("database did not answer in 2 s")
            except TimeoutError as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("http.response.status_code", 500)
        else:
            span.set_attribute("http.response.status_code", 200)


def service(name, before, after):
    """before/after: (spans per second, failed share)."""
    provider, tracer = tracer_for(name)
    rng = random.Random(name)
    log(f"{name}: {before[0]} spans/s at {before[1]:.0%} failed for {RATE_MINUTES} min")
    paced(before[0], RATE_MINUTES * 60, lambda i: request(tracer, before[1], rng))
    log(f"{name}: {after[0]} spans/s at {after[1]:.0%} failed for {CHANGE_MINUTES} min")
    paced(after[0], CHANGE_MINUTES * 60, lambda i: request(tracer, after[1], rng))
    provider.shutdown()
    log(f"{name}: done")


def api(path):
    call = urllib.request.Request(f"{BASE}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(call, timeout=10) as answer:
        return json.load(answer)


def show(project_id, title):
    items = api(f"/api/v1/incidents?project={project_id}&limit=100")["items"]
    print(f"\n{title}: {len(items)} incidents")
    for incident in sorted(items, key=lambda i: i["id"]):
        series = incident["series"]
        where = series["scope"] + (f" {series['service']}" if series["service"] else "") + (
            f" issue {series['issue_id']}" if series["issue_id"] else "")
        details = incident.get("details") or {}
        extra = ""
        if "ratio" in details:
            extra = f" ratio {details['ratio_before']:.3f} -> {details['ratio']:.3f}"
        elif "shape" in details:
            extra = f" {details['shape']}, expected {details.get('expected', 0):.1f}"
        elif "title" in details:
            extra = f" {details['title']}"
        print(f"  #{incident['id']:<4} {incident['opened_at'][11:19]} {incident['kind']:<10} "
              f"kinds={','.join(incident.get('kinds', []))} {where:<28} state={incident['state']} "
              f"score={incident['score']:.2f}{extra}")


def log(text):
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def main():
    started = time.strftime("%H:%M:%S")
    threads = [
        threading.Thread(target=fresh_project),
        threading.Thread(target=service, args=("main", (50, 0.01), (50, 0.30))),
        threading.Thread(target=service, args=("control", (50, 0.01), (100, 0.01))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The last minute closes, then the detector's next pass (every 5 s) decides it.
    log("waiting 90 s for the detector to decide the last minutes")
    time.sleep(90)
    print(f"\nstarted {started} UTC; times below are UTC bucket starts")
    show(FRESH_ID, "fresh project (Sentry SDK)")
    show(SERVICES_ID, "services project (OTLP)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
