"""confluent-kafka-python (librdkafka) with logins, ACLs and quotas, for
sasl_test.go, acl_test.go and quota_test.go.

    sasl.py [--ca CA_FILE] MODE BOOTSTRAP MECHANISM USER PASSWORD ARGS...

With --ca the connection is SASL_SSL trusting CA_FILE, else SASL_PLAINTEXT.

    roundtrip ... TOPIC [GROUP]
        produce three records, read them back with a consumer group;
        prints {"produced": [...], "consumed": [...]}
    produce ... TOPIC
        produce three records; prints {"produced", "delivery_errors",
        "undelivered"}
    consume ... TOPIC GROUP COUNT
        read COUNT records with a consumer group, stopping at the first
        authorization error; prints {"consumed": [...], "errors": [...]}
    txn ... TOPIC TRANSACTIONAL_ID
        produce three records in a transaction and commit it; prints
        {"produced", "txn_error"}
    refused ...
    nosasl BOOTSTRAP
        ask for metadata; prints {"metadata_error": ..., "errors": [...]}
        with every error librdkafka reported
    throttle BOOTSTRAP TOPIC CLIENT_ID   (no login)
        produce 256 KiB as CLIENT_ID until librdkafka reports a throttle
        (throttle_cb); prints {"throttles": [{"broker", "ms"}]}
    throttle-all BOOTSTRAP TOPIC CLIENT_ID
        the same, waiting for every record to be delivered instead

Each run is bounded; a JSON summary is printed on stdout whatever happens.
The Go tests assert on it.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer


# TOPIC_, GROUP_, CLUSTER_ and TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
AUTHZ = (29, 30, 31, 53)


def err_dict(e):
    return {"code": e.code(), "name": e.name(), "str": e.str()}


def config(bootstrap, errors, mechanism=None, user=None, password=None, ca=None):
    c = {
        "bootstrap.servers": bootstrap,
        "error_cb": lambda e: errors.append(err_dict(e)),
        "socket.timeout.ms": 10000,
    }
    if mechanism:
        c.update({
            "security.protocol": "SASL_SSL" if ca else "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism,
            "sasl.username": user,
            "sasl.password": password,
        })
        if ca:
            c["ssl.ca.location"] = ca
    return c


def produce(conf, topic, out, label):
    p = Producer(dict(conf, **{"message.timeout.ms": 30000}))
    delivered = []
    for i in range(3):
        value = f"{label}-{i}"
        p.produce(topic, value=value.encode(), on_delivery=lambda err, msg: delivered.append(err))
        out["produced"].append(value)
    out["undelivered"] = p.flush(45)
    out["delivery_errors"] = [err_dict(e) for e in delivered if e is not None]


def consume(conf, topic, group, count, out):
    c = Consumer(dict(conf, **{"group.id": group, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    deadline = time.time() + 60
    # An authorization error (from poll or error_cb) ends it: no use
    # waiting.
    while len(out["consumed"]) < count and time.time() < deadline and not any(e["code"] in AUTHZ for e in out["errors"]):
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            out["errors"].append(err_dict(m.error()))
            continue
        out["consumed"].append(m.value().decode())
    c.close()


def txn(conf, topic, txn_id, out):
    p = Producer(dict(conf, **{"transactional.id": txn_id, "message.timeout.ms": 30000}))
    try:
        p.init_transactions(30)
        p.begin_transaction()
        for i in range(3):
            value = f"txn-{i}"
            p.produce(topic, value=value.encode())
            out["produced"].append(value)
        p.commit_transaction(30)
    except KafkaException as e:
        out["txn_error"] = err_dict(e.args[0])


def metadata(conf, out):
    p = Producer(conf)
    try:
        p.list_topics(timeout=30)
    except KafkaException as e:
        out["metadata_error"] = err_dict(e.args[0])
    # Let error_cb see what happened on the connections.
    p.poll(1)


def throttle(bootstrap, topic, client_id, out, stop_at_first):
    throttles = out["throttles"]
    p = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "compression.codec": "none",
        "linger.ms": 5,
        "message.timeout.ms": 60000,
        "error_cb": lambda e: out["errors"].append(err_dict(e)),
        "throttle_cb": lambda ev: throttles.append({"broker": ev.broker_name, "ms": int(ev.throttle_time * 1000)}),
    })
    value = b"x" * 4096
    for _ in range(64):
        p.produce(topic, value=value)
    if not stop_at_first:
        out["undelivered"] = p.flush(60)
        return
    deadline = time.time() + 60
    while not throttles and time.time() < deadline:
        p.poll(0.5)
    p.purge()
    p.flush(10)


def main():
    args = sys.argv[1:]
    ca = None
    if args[:1] == ["--ca"]:
        ca, args = args[1], args[2:]
    mode, bootstrap = args[0], args[1]
    errors = []
    out = {"produced": [], "consumed": [], "errors": errors, "delivery_errors": [], "undelivered": 0,
           "metadata_error": None, "txn_error": None, "throttles": []}
    if mode == "nosasl":
        metadata(config(bootstrap, errors), out)
    elif mode in ("throttle", "throttle-all"):
        throttle(bootstrap, args[2], args[3], out, mode == "throttle")
    else:
        mechanism, user, password = args[2:5]
        conf = config(bootstrap, errors, mechanism, user, password, ca)
        rest = args[5:]
        if mode == "roundtrip":
            produce(conf, rest[0], out, mechanism)
            group = rest[1] if len(rest) > 1 else "sasl-" + mechanism.lower()
            consume(conf, rest[0], group, 3, out)
        elif mode == "produce":
            produce(conf, rest[0], out, user)
        elif mode == "consume":
            consume(conf, rest[0], rest[1], int(rest[2]), out)
        elif mode == "txn":
            txn(conf, rest[0], rest[1], out)
        elif mode == "refused":
            metadata(conf, out)
        else:
            raise SystemExit("unknown mode " + mode)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
