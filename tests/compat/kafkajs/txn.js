// KafkaJS transactions check, driven by tests/compat/kafkajs_test.go:
//
//   node txn.js BROKER INPUT OUTPUT GROUP RECORDS ABORT_AT FENCE_TOPIC
//
// A consume-transform-produce loop: a read_committed consumer in GROUP
// (autoCommit off) reads INPUT, and for each record a transactional
// producer writes "out:" + value to OUTPUT (same partition and key) and
// sends the record's next offset with sendOffsets, then commits, until
// RECORDS records are committed. Record number ABORT_AT (from 0) is first
// done in a transaction writing "aborted:" + value that is aborted on
// purpose, after which the group's offsets are read, then done again.
// Then zombie fencing on FENCE_TOPIC: a second producer with the first
// one's transactional ID fences it, and the first one's commit must fail.
//
// It prints one JSON summary on stdout and checks nothing itself: the Go
// test asserts on it. Every step has a deadline and a watchdog ends the
// process, so it never hangs CI.
import kafkajs from 'kafkajs'

const { Kafka, logLevel } = kafkajs

const [broker, input, output, group, records, abortAt, fenceTopic] = process.argv.slice(2)
if (!fenceTopic) {
  process.stderr.write('usage: node txn.js BROKER INPUT OUTPUT GROUP RECORDS ABORT_AT FENCE_TOPIC\n')
  process.exit(2)
}
const RECORDS = Number(records)
const ABORT_AT = Number(abortAt)
const STEP_MS = 30_000
const WATCHDOG_MS = 110_000

const summary = { transactions: [], errors: [] }
let finished = false

function finish(code) {
  if (finished) return
  finished = true
  process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(code))
}

const watchdog = setTimeout(() => {
  summary.watchdog = `script did not finish in ${WATCHDOG_MS} ms`
  finish(3)
}, WATCHDOG_MS)

function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

const errInfo = e => ({ name: e && e.name, type: e && e.type, code: e && e.code, message: String(e && e.message) })

const kafka = new Kafka({
  clientId: 'streamhouse-compat-kafkajs-txn',
  brokers: [broker],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 },
})

const txnProducer = id =>
  kafka.producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })

async function eos() {
  const producer = txnProducer(`${group}-txn`)
  await withTimeout(producer.connect(), STEP_MS, 'producer.connect')
  const admin = kafka.admin()
  await withTimeout(admin.connect(), STEP_MS, 'admin.connect')
  const consumer = kafka.consumer({
    groupId: group,
    readUncommitted: false,
    sessionTimeout: 10_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  })
  consumer.on(consumer.events.CRASH, e => summary.errors.push(`consumer crash: ${e.payload.error}`))
  await withTimeout(consumer.connect(), STEP_MS, 'consumer.connect')
  await withTimeout(consumer.subscribe({ topics: [input], fromBeginning: true }), STEP_MS, 'consumer.subscribe')

  let n = 0
  let done = 0
  let failed
  // One transaction: the transformed record and the record's next offset.
  const transact = async (partition, message, tag, commit) => {
    const txn = await producer.transaction()
    const value = tag + message.value.toString()
    const key = message.key.toString()
    await txn.send({ topic: output, acks: -1, messages: [{ partition, key, value }] })
    const next = String(Number(message.offset) + 1)
    await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic: input, partitions: [{ partition, offset: next }] }] })
    const entry = { abort: !commit, produced: [{ partition, key, value }], offsets: { [partition]: Number(next) } }
    if (commit) {
      await txn.commit()
      done++
    } else {
      await txn.abort()
      const res = await admin.fetchOffsets({ groupId: group, topics: [input] })
      entry.committedAfter = Object.fromEntries(res.flatMap(t => t.partitions.map(p => [p.partition, Number(p.offset)])))
    }
    summary.transactions.push(entry)
  }
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      if (failed) return
      try {
        if (n === ABORT_AT) await withTimeout(transact(partition, message, 'aborted:', false), STEP_MS, 'aborted transaction')
        await withTimeout(transact(partition, message, 'out:', true), STEP_MS, 'transaction')
        n++
      } catch (e) {
        failed = e
        summary.errors.push(`transaction ${n}: ${e && e.stack ? e.stack : e}`)
      }
    },
  })
  const deadline = Date.now() + 60_000
  while (done < RECORDS && !failed) {
    if (Date.now() > deadline) throw new Error(`${done} of ${RECORDS} records committed in 60 s`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  if (failed) throw failed
  await withTimeout(consumer.disconnect(), STEP_MS, 'consumer.disconnect')
  await withTimeout(producer.disconnect(), STEP_MS, 'producer.disconnect')
  await withTimeout(admin.disconnect(), STEP_MS, 'admin.disconnect')
}

async function fence() {
  const id = `${fenceTopic}-txn`
  const first = txnProducer(id)
  await withTimeout(first.connect(), STEP_MS, 'first.connect')
  const zombie = await first.transaction()
  await withTimeout(
    zombie.send({ topic: fenceTopic, acks: -1, messages: [{ partition: 0, key: 'zombie', value: 'zombie' }] }),
    STEP_MS,
    'first.send'
  )
  // KafkaJS calls InitProducerId with the transactional ID at the first
  // transaction(), not at connect(): that call fences the first producer.
  const second = txnProducer(id)
  await withTimeout(second.connect(), STEP_MS, 'second.connect')
  const txn = await withTimeout(second.transaction(), STEP_MS, 'second.transaction')
  try {
    await withTimeout(zombie.commit(), STEP_MS, 'first.commit')
    summary.zombieCommit = { ok: true }
  } catch (e) {
    summary.zombieCommit = { ok: false, error: errInfo(e) }
  }
  await withTimeout(
    txn.send({ topic: fenceTopic, acks: -1, messages: [{ partition: 0, key: 'second', value: 'second' }] }),
    STEP_MS,
    'second.send'
  )
  await withTimeout(txn.commit(), STEP_MS, 'second.commit')
  summary.secondCommitted = true
  await first.disconnect().catch(() => {})
  await second.disconnect()
}

async function main() {
  await eos()
  await fence()
}

main()
  .then(() => {
    clearTimeout(watchdog)
    finish(0)
  })
  .catch(e => {
    summary.fatal = String(e && e.stack ? e.stack : e)
    finish(1)
  })
