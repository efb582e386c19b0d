"""librdkafka transactions check, driven by tests/compat/confluent_test.go.

    python3 txn.py eos   BROKER INPUT OUTPUT GROUP TXN_ID RECORDS ABORT_AT
    python3 txn.py fence BROKER OUTPUT TXN_ID
    python3 txn.py stale-member BROKER TOPIC GROUP TXN_ID

eos: a consume-transform-produce loop with confluent-kafka (librdkafka): a
read_committed consumer in GROUP reads INPUT and a transactional producer
writes one record per input record to OUTPUT (same partition, same key,
value "out:" + input value), sending the consumer's positions with
send_offsets_to_transaction and committing, until RECORDS input records are
committed. The transaction numbered ABORT_AT (from 0) writes "aborted:"
values, sends its offsets, and is aborted on purpose; the consumer then
rewinds to the group's committed offsets and processes them again.

fence: a transactional producer writes one record in a transaction; a second
producer with the same TXN_ID calls init_transactions (fencing the first);
the first one's commit must fail; the second one commits its own record.

stale-member: a consumer's group metadata is kept across a rebalance (a
second member joins); offsets sent with it in a transaction must be
refused (KIP-447), and with the member's current metadata accepted.

Each prints one JSON summary on stdout and check nothing themselves: the Go
test asserts on it. Every blocking call has a timeout.
"""

import json
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

TIMEOUT = 30  # seconds, for each blocking call
DEADLINE = 100  # seconds, for the whole loop

summary = {"transactions": [], "errors": []}


def on_error(err):
    # librdkafka reports transient broker errors here too; keep them for
    # the Go side to show when something fails.
    if len(summary["errors"]) < 50:
        summary["errors"].append(str(err))


def common(broker):
    return {
        "bootstrap.servers": broker,
        "error_cb": on_error,
        "socket.timeout.ms": 15000,
        "debug": "eos,protocol,broker" if "--debug" in sys.argv else "",
    }


def kafka_error(e):
    err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
    if err is None:
        return {"name": type(e).__name__, "str": str(e)}
    return {
        "code": err.code(),
        "name": err.name(),
        "str": err.str(),
        "fatal": err.fatal(),
        "retriable": err.retriable(),
        "txn_requires_abort": err.txn_requires_abort(),
    }


def offsets(tps):
    return {str(tp.partition): tp.offset for tp in tps}


def eos(broker, input_topic, output_topic, group, txn_id, records, abort_at):
    consumer = Consumer(
        dict(
            common(broker),
            **{
                "group.id": group,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 500,
            },
        )
    )
    producer = Producer(
        dict(
            common(broker),
            **{
                "transactional.id": txn_id,
                "transaction.timeout.ms": 60000,
                "linger.ms": 5,
            },
        )
    )
    producer.init_transactions(TIMEOUT)
    consumer.subscribe([input_topic])

    done = 0  # input records whose outputs are committed
    n = 0
    deadline = time.monotonic() + DEADLINE
    while done < records:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{done} of {records} records committed in {DEADLINE} s")
        msgs = []
        for m in consumer.consume(num_messages=4, timeout=1):
            if m.error() is not None:
                on_error(m.error())  # a consumer event, not a record
            else:
                msgs.append(m)
        if not msgs:
            continue
        abort = n == abort_at
        tag = "aborted:" if abort else "out:"
        producer.begin_transaction()
        produced = []
        for m in msgs:
            value = tag.encode() + m.value()
            producer.produce(output_topic, key=m.key(), value=value, partition=m.partition())
            produced.append({"partition": m.partition(), "input_offset": m.offset(),
                             "key": m.key().decode(), "value": value.decode()})
        positions = consumer.position(consumer.assignment())
        sent = [tp for tp in positions if tp.offset >= 0]
        producer.send_offsets_to_transaction(sent, consumer.consumer_group_metadata(), TIMEOUT)
        txn = {"n": n, "abort": abort, "produced": produced, "offsets": offsets(sent)}
        if abort:
            # abort_transaction purges records still queued in the client:
            # deliver them first, so the log holds them, to be hidden.
            if producer.flush(TIMEOUT) != 0:
                raise RuntimeError("aborted transaction: records not delivered")
            producer.abort_transaction(TIMEOUT)
            # What the group has committed right after the abort: the
            # previous transactions' offsets, never this one's.
            committed = consumer.committed(consumer.assignment(), TIMEOUT)
            txn["committed_after"] = offsets(committed)
            # Process the aborted records again: rewind to the committed
            # offsets (the start of the partition when none).
            for tp in committed:
                if tp.offset < 0:
                    tp.offset = OFFSET_BEGINNING
                consumer.seek(tp)
        else:
            producer.commit_transaction(TIMEOUT)
            done += len(msgs)
            txn["committed_after"] = offsets(consumer.committed(consumer.assignment(), TIMEOUT))
        summary["transactions"].append(txn)
        n += 1
    consumer.close()


def fence(broker, output_topic, txn_id):
    conf = dict(common(broker), **{"transactional.id": txn_id, "transaction.timeout.ms": 60000})
    first = Producer(conf)
    first.init_transactions(TIMEOUT)
    first.begin_transaction()
    first.produce(output_topic, key=b"zombie", value=b"zombie", partition=0)
    if first.flush(TIMEOUT) != 0:
        raise RuntimeError("first producer: record not delivered")

    second = Producer(conf)
    second.init_transactions(TIMEOUT)

    try:
        first.commit_transaction(TIMEOUT)
        summary["zombie_commit"] = {"ok": True}
    except KafkaException as e:
        summary["zombie_commit"] = {"ok": False, "error": kafka_error(e)}

    second.begin_transaction()
    second.produce(output_topic, key=b"second", value=b"second", partition=0)
    second.commit_transaction(TIMEOUT)
    summary["second_committed"] = True


def stale_member(broker, topic, group, txn_id):
    """KIP-447: offsets sent with a group member's metadata from before a
    rebalance must be refused (the generation moved on)."""
    assigned = {"a": 0, "b": 0}

    def consumer(name):
        c = Consumer(
            dict(
                common(broker),
                **{
                    "group.id": group,
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 10000,
                    "heartbeat.interval.ms": 300,
                },
            )
        )

        def on_assign(_c, parts):
            assigned[name] += 1

        c.subscribe([topic], on_assign=on_assign)
        return c

    def poll_until(what, cond, *consumers):
        deadline = time.monotonic() + TIMEOUT
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {TIMEOUT} s (assignments {assigned})")
            for c in consumers:
                c.poll(0.1)

    a = consumer("a")
    poll_until("first member assigned", lambda: assigned["a"] >= 1, a)
    stale = a.consumer_group_metadata()
    b = consumer("b")
    # Both poll: the first member rejoins the new generation.
    poll_until("rebalance to two members", lambda: assigned["a"] >= 2 and assigned["b"] >= 1, a, b)

    producer = Producer(dict(common(broker), **{"transactional.id": txn_id, "transaction.timeout.ms": 60000}))
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    try:
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], stale, TIMEOUT)
        summary["stale_offsets"] = {"ok": True}
        producer.commit_transaction(TIMEOUT)
    except KafkaException as e:
        summary["stale_offsets"] = {"ok": False, "error": kafka_error(e)}
        producer.abort_transaction(TIMEOUT)
    summary["committed_after_stale"] = offsets(a.committed([TopicPartition(topic, 0)], TIMEOUT))

    # The same with the member's current metadata is accepted.
    producer.begin_transaction()
    producer.send_offsets_to_transaction([TopicPartition(topic, 0, 2)], a.consumer_group_metadata(), TIMEOUT)
    producer.commit_transaction(TIMEOUT)
    summary["committed_after_current"] = offsets(a.committed([TopicPartition(topic, 0)], TIMEOUT))
    b.close()
    a.close()


def main():
    args = [a for a in sys.argv[1:] if a != "--debug"]
    try:
        if args[0] == "eos":
            broker, inp, out, group, txn_id, records, abort_at = args[1:8]
            eos(broker, inp, out, group, txn_id, int(records), int(abort_at))
        elif args[0] == "fence":
            fence(*args[1:4])
        elif args[0] == "stale-member":
            stale_member(*args[1:5])
        else:
            raise SystemExit(f"unknown mode {args[0]}")
    except KafkaException as e:
        summary["fatal"] = kafka_error(e)
    except Exception as e:  # noqa: BLE001 - reported to the Go test
        summary["fatal"] = {"name": type(e).__name__, "str": str(e)}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
