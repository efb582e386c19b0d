"""librdkafka over TLS, driven by tests/compat/tls_test.go.

    python3 tls_roundtrip.py BROKER TOPIC COUNT CA_FILE [CERT_FILE KEY_FILE]

Produces COUNT records ("k<i>" -> "v<i>") to partition 0 of TOPIC with
confluent-kafka (librdkafka) over SSL, trusting CA_FILE and, when given,
presenting CERT_FILE/KEY_FILE as client certificate, then consumes the
partition from the beginning until COUNT records came back. Prints one JSON
summary on stdout and checks nothing itself: the Go test asserts on it.
Every blocking call has a timeout.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def main():
    broker, topic, count, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ssl = {
        "bootstrap.servers": broker,
        "security.protocol": "ssl",
        "ssl.ca.location": ca,
        # librdkafka's default since 2.0; set so older ones check too.
        "ssl.endpoint.identification.algorithm": "https",
    }
    if len(sys.argv) > 6:
        ssl["ssl.certificate.location"] = sys.argv[5]
        ssl["ssl.key.location"] = sys.argv[6]
    out = {"produced": [], "consumed": [], "errors": []}

    p = Producer(dict(ssl, **{"acks": "all", "message.timeout.ms": 30000}))

    def delivered(err, msg):
        if err is not None:
            out["errors"].append("delivery: " + str(err))
        else:
            out["produced"].append(msg.offset())

    for i in range(count):
        p.produce(topic, key=f"k{i}", value=f"v{i}", partition=0, on_delivery=delivered)
    left = p.flush(45)
    if left:
        out["errors"].append(f"{left} records not delivered")

    c = Consumer(dict(ssl, **{"group.id": "tls-roundtrip", "enable.auto.commit": False}))
    c.assign([TopicPartition(topic, 0, 0)])
    deadline = time.time() + 45
    while len(out["consumed"]) < count and time.time() < deadline:
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            out["errors"].append("consume: " + str(msg.error()))
            continue
        out["consumed"].append(
            {"offset": msg.offset(), "key": msg.key().decode(), "value": msg.value().decode()}
        )
    c.close()
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except KafkaException as e:
        print(json.dumps({"produced": [], "consumed": [], "errors": ["fatal: " + str(e)]}))
