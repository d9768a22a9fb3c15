"""Pushes metrics to an OTLP/HTTP endpoint with the real OpenTelemetry Python SDK and its
OTLP/HTTP protobuf exporter, in two rounds, so that a test can check what the server made of
them. Exits 1 if an export is not a success.

usage: otlp_push.py ENDPOINT {cumulative|delta} {gzip|none}

What is recorded (the totals after both rounds are what a Prometheus must show, whatever the
temporality):
  counter http.requests {request}: GET 5 then 3 (8), POST 2
  up-down counter queue.size {item}: 10, -3, then 1 (8)
  observable gauge cpu.temperature Cel {cpu=0}: 41.5, then 42
  histogram http.server.duration ms, bounds 5 10 25: 3 7 30, then 8
  exponential histogram payload.size By: 100 1000, then 10
"""

import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource


def main():
    endpoint, temporality, compression = sys.argv[1:4]
    chosen = {
        "cumulative": AggregationTemporality.CUMULATIVE,
        "delta": AggregationTemporality.DELTA,
    }[temporality]
    preferred = {
        kind: chosen
        for kind in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter)
    }
    preferred[ObservableGauge] = AggregationTemporality.CUMULATIVE
    reader = InMemoryMetricReader(preferred_temporality=preferred)
    exporter = OTLPMetricExporter(
        endpoint=endpoint,
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
        timeout=10,
    )
    resource = Resource(
        {
            "service.name": "checkout",
            "service.namespace": "shop",
            "service.instance.id": "i-1",
            "deployment.environment": "test",
            "host.name": "h1",
        }
    )
    provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation()),
        ],
    )
    meter = provider.get_meter("checkout-meter", "1.0")
    requests = meter.create_counter("http.requests", unit="{request}", description="Requests served.")
    queue = meter.create_up_down_counter("queue.size", unit="{item}", description="Items queued.")
    duration = meter.create_histogram(
        "http.server.duration",
        unit="ms",
        description="Time to serve a request.",
        explicit_bucket_boundaries_advisory=[5.0, 10.0, 25.0],
    )
    payload = meter.create_histogram("payload.size", unit="By", description="Payload sizes.")
    temperature = [41.5]
    meter.create_observable_gauge(
        "cpu.temperature",
        callbacks=[lambda options: [Observation(temperature[0], {"cpu": "0"})]],
        unit="Cel",
        description="CPU temperature.",
    )

    requests.add(5, {"http.request.method": "GET"})
    requests.add(2, {"http.request.method": "POST"})
    queue.add(10)
    queue.add(-3)
    for value in (3, 7, 30):
        duration.record(value)
    for value in (100, 1000):
        payload.record(value)
    export(reader, exporter)

    requests.add(3, {"http.request.method": "GET"})
    queue.add(1)
    duration.record(8)
    payload.record(10)
    temperature[0] = 42.0
    export(reader, exporter)
    print("ok")


def export(reader, exporter):
    data = reader.get_metrics_data()
    result = exporter.export(data)
    if result != MetricExportResult.SUCCESS:
        sys.exit(f"export failed: {result}")


if __name__ == "__main__":
    main()
