"""Encodes a remote write 1.0 request from its proto3 JSON form (on stdin) with the messages
generated from Prometheus's published prompb types.proto and remote.proto (PyPI remote-pb2),
and writes the protobuf bytes to stdout: an encoder that is not the exporter's own."""
import json
import sys

from google.protobuf import json_format
from remote_pb2 import remote_pb2

request = json_format.ParseDict(json.load(sys.stdin), remote_pb2.WriteRequest())
sys.stdout.buffer.write(request.SerializeToString())
