#!/usr/bin/env bash
# Prepare this machine for herald's test suite (run by `npm test` before the tests, and by .ci/run):
#  - Debian's python3-zmq and python3-pika for the legacy fedmsg / fedora-messaging peers;
#  - RabbitMQ running on 127.0.0.1:5672 with no alarm left over from a fault test.
# Idempotent and quick when everything is already there.
set -euo pipefail

PY=/usr/bin/python3
need_apt=()
"$PY" -c 'import zmq' 2>/dev/null || need_apt+=(python3-zmq)
"$PY" -c 'import pika' 2>/dev/null || need_apt+=(python3-pika)
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-setup: missing Debian packages: ${need_apt[*]}; run: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  echo "test-setup: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

rabbit_up() { rabbitmqctl -q status >/dev/null 2>&1; }
if command -v rabbitmqctl >/dev/null 2>&1; then
  if ! rabbit_up; then
    echo "test-setup: starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || rabbitmqctl -q wait --timeout 120 --pid "$(pgrep -o beam.smp)" >/dev/null 2>&1 || true
  # An app stopped by an interrupted fault test, or alarms it set, must not leak into this run.
  rabbitmqctl -q start_app >/dev/null 2>&1 || true
  rabbitmqctl -q set_vm_memory_high_watermark 0.4 >/dev/null 2>&1 || true
  rabbitmqctl -q set_disk_free_limit 50MB >/dev/null 2>&1 || true
  rabbit_up || { echo "test-setup: RabbitMQ is not running and could not be started" >&2; exit 1; }
else
  echo "test-setup: rabbitmqctl not found; install rabbitmq-server (apt-get install rabbitmq-server)" >&2
  exit 1
fi
echo "test-setup: python3-zmq, python3-pika and RabbitMQ ready"
