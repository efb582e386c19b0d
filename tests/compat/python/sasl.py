"""SASL logins with confluent-kafka-python (librdkafka), for sasl_test.go.

    sasl.py roundtrip BOOTSTRAP MECHANISM USER PASSWORD TOPIC
        produce three records over SASL_PLAINTEXT, read them back with a
        consumer group; prints {"produced": [...], "consumed": [...]}
    sasl.py refused BOOTSTRAP MECHANISM USER PASSWORD
    sasl.py nosasl BOOTSTRAP
        ask for metadata; prints {"metadata_error": ..., "errors": [...]}
        with every error librdkafka reported

Each run is bounded; a JSON summary is printed on stdout whatever happens.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer


def config(bootstrap, errors, mechanism=None, user=None, password=None):
    c = {
        "bootstrap.servers": bootstrap,
        "error_cb": lambda e: errors.append({"code": e.code(), "name": e.name(), "str": e.str()}),
        "socket.timeout.ms": 10000,
    }
    if mechanism:
        c.update({
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism,
            "sasl.username": user,
            "sasl.password": password,
        })
    return c


def roundtrip(bootstrap, mechanism, user, password, topic):
    errors = []
    out = {"produced": [], "consumed": [], "errors": errors}
    p = Producer(config(bootstrap, errors, mechanism, user, password))
    delivered = []
    for i in range(3):
        value = f"{mechanism}-{i}"
        p.produce(topic, value=value.encode(), on_delivery=lambda err, msg: delivered.append(err))
        out["produced"].append(value)
    left = p.flush(30)
    out["delivery_errors"] = [str(e) for e in delivered if e is not None]
    out["undelivered"] = left
    c = Consumer(dict(config(bootstrap, errors, mechanism, user, password), **{
        "group.id": "sasl-" + mechanism.lower(),
        "auto.offset.reset": "earliest",
    }))
    c.subscribe([topic])
    deadline = time.time() + 60
    while len(out["consumed"]) < 3 and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            errors.append({"code": m.error().code(), "name": m.error().name(), "str": m.error().str()})
            continue
        out["consumed"].append(m.value().decode())
    c.close()
    return out


def metadata(conf):
    errors = conf["__errors"]
    del conf["__errors"]
    out = {"metadata_error": None, "errors": errors}
    p = Producer(conf)
    try:
        p.list_topics(timeout=30)
    except KafkaException as e:
        err = e.args[0]
        out["metadata_error"] = {"code": err.code(), "name": err.name(), "str": err.str()}
    # Let error_cb see what happened on the connections.
    p.poll(1)
    return out


def main():
    mode = sys.argv[1]
    if mode == "roundtrip":
        out = roundtrip(*sys.argv[2:7])
    elif mode == "refused":
        errors = []
        conf = config(sys.argv[2], errors, *sys.argv[3:6])
        conf["__errors"] = errors
        out = metadata(conf)
    elif mode == "nosasl":
        errors = []
        conf = config(sys.argv[2], errors)
        conf["__errors"] = errors
        out = metadata(conf)
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
