// KafkaJS compatibility check, driven by tests/compat/kafkajs_test.go:
//
//   node compat.js BROKER TOPIC_PREFIX
//
// It runs admin calls, producers (acks -1 and 1, gzip, idempotent) and a
// consumer group of three consumers against BROKER, and prints one JSON
// summary on stdout: what it sent, what it read back, and what each call
// answered. It checks nothing itself; the Go test asserts on the summary.
// Every step has a deadline and a watchdog ends the process, so it never
// hangs CI.
import kafkajs from 'kafkajs'

const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes, Partitioners } = kafkajs

const [broker, prefix] = process.argv.slice(2)
if (!broker || !prefix) {
  process.stderr.write('usage: node compat.js BROKER TOPIC_PREFIX\n')
  process.exit(2)
}

const PARTITIONS = 6
const CONSUMERS = 3
const STEP_MS = 30_000
const WATCHDOG_MS = 110_000

const summary = { steps: {}, sent: [], received: [], assignments: {}, settled: {} }
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

// step runs fn with a deadline and records its result or error under name.
async function step(name, fn) {
  const started = Date.now()
  try {
    const result = await withTimeout(fn(), STEP_MS, name)
    summary.steps[name] = { ok: true, result: result === undefined ? null : result, ms: Date.now() - started }
    return result
  } catch (e) {
    summary.steps[name] = { ok: false, error: String(e && e.stack ? e.stack : e), ms: Date.now() - started }
    return undefined
  }
}

// Polls cond until it returns true or ms passes.
async function until(cond, ms, what) {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const b64 = b => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))

// Headers as [name, base64 value] pairs in a stable order; KafkaJS turns
// repeated names into arrays.
function headerPairs(headers) {
  const pairs = []
  for (const [name, v] of Object.entries(headers || {})) {
    for (const one of Array.isArray(v) ? v : [v]) pairs.push([name, b64(one)])
  }
  return pairs
}

const kafka = new Kafka({
  clientId: 'streamhouse-compat-kafkajs',
  brokers: [broker],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
})

const recordsTopic = `${prefix}-records`
const tsTopic = `${prefix}-timestamps`
const groupId = `${prefix}-group`

async function main() {
  const admin = kafka.admin()
  await step('admin.connect', () => admin.connect())

  await step('admin.createTopics', () =>
    admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: recordsTopic, numPartitions: PARTITIONS },
        { topic: tsTopic, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '86400000' }] },
      ],
    })
  )
  await step('admin.createTopics.again', () =>
    admin.createTopics({ topics: [{ topic: tsTopic, numPartitions: 1 }] })
  )
  await step('admin.listTopics', async () =>
    (await admin.listTopics()).filter(t => t.startsWith(prefix)).sort()
  )
  await step('admin.fetchTopicMetadata', async () => {
    const md = await admin.fetchTopicMetadata({ topics: [recordsTopic] })
    return md.topics.map(t => ({
      name: t.name,
      partitions: t.partitions
        .map(p => ({ partitionId: p.partitionId, leader: p.leader, errorCode: p.partitionErrorCode }))
        .sort((a, b) => a.partitionId - b.partitionId),
    }))
  })
  await step('admin.describeConfigs', async () => {
    const res = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: tsTopic, configNames: ['retention.ms'] }],
    })
    return res.resources.flatMap(r => r.configEntries.map(e => ({ name: e.configName, value: e.configValue })))
  })

  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner })
  await step('producer.connect', () => producer.connect())

  // Timestamps an hour back, a second apart, for the by-timestamp lookup.
  const t0 = Date.now() - 3600_000
  summary.t0 = t0
  await step('producer.send.timestamps', () =>
    producer.send({
      topic: tsTopic,
      acks: -1,
      messages: [0, 1, 2, 3, 4].map(i => ({ key: `ts-${i}`, value: `at ${i} s`, timestamp: String(t0 + i * 1000) })),
    })
  )
  await step('admin.fetchTopicOffsets', () => admin.fetchTopicOffsets(tsTopic))
  await step('admin.fetchTopicOffsetsByTimestamp', () => admin.fetchTopicOffsetsByTimestamp(tsTopic, t0 + 2500))
  await step('admin.fetchTopicOffsetsByTimestamp.future', () =>
    admin.fetchTopicOffsetsByTimestamp(tsTopic, Date.now() + 3600_000)
  )

  // Three sends of five records per partition: acks -1, acks 1, and gzip.
  const sends = [
    { name: 'acks-all', acks: -1 },
    { name: 'acks-1', acks: 1 },
    { name: 'gzip', acks: -1, compression: CompressionTypes.GZIP },
  ]
  for (const s of sends) {
    const messages = []
    for (let p = 0; p < PARTITIONS; p++) {
      for (let i = 0; i < 5; i++) {
        const key = i === 4 ? null : Buffer.from(`${s.name}-${p}-${i}`)
        let value
        if (i === 0) value = null
        else if (i === 1) value = Buffer.from([0, 1, 2, 0xfe, 0xff])
        else if (i === 2) value = Buffer.from(`zürich ✓ ${s.name} `.repeat(i === 2 && p === 0 ? 500 : 1))
        else if (i === 3) value = Buffer.alloc(0)
        else value = Buffer.from(`keyless ${s.name} ${p}`)
        const headers = { send: s.name, bin: Buffer.from([0xff, 0, p]), dup: ['first', 'second'] }
        const timestamp = String(t0 + 10_000 + 100 * p + i)
        messages.push({ partition: p, key, value, headers, timestamp })
        summary.sent.push({ partition: p, key: b64(key), value: b64(value), headers: headerPairs(headers), timestamp })
      }
    }
    await step(`producer.send.${s.name}`, () =>
      producer.send({ topic: recordsTopic, acks: s.acks, compression: s.compression, messages })
    )
  }
  await step('producer.disconnect', () => producer.disconnect())

  const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await step('idempotent.connect', () => idempotent.connect())
  await step('idempotent.send', () =>
    idempotent.send({
      topic: tsTopic,
      acks: -1,
      messages: [5, 6, 7].map(i => ({ key: `ts-${i}`, value: `idempotent ${i}` })),
    })
  )
  await step('idempotent.disconnect', () => idempotent.disconnect())
  await step('admin.fetchTopicOffsets.afterIdempotent', () => admin.fetchTopicOffsets(tsTopic))

  // The consumer group: three consumers in this process, each with the
  // member ID the coordinator gives it.
  const consumers = []
  const joins = []
  const seen = new Set()
  for (let c = 0; c < CONSUMERS; c++) {
    const consumer = kafka.consumer({
      groupId,
      sessionTimeout: 10_000,
      rebalanceTimeout: 10_000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 200,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    })
    consumer.on(consumer.events.GROUP_JOIN, e => {
      summary.assignments[c] = { memberId: e.payload.memberId, partitions: e.payload.memberAssignment[recordsTopic] || [] }
      joins.push({ consumer: c, memberId: e.payload.memberId, protocol: e.payload.groupProtocol })
    })
    consumer.on(consumer.events.CRASH, e => {
      summary.steps[`consumer${c}.crash`] = { ok: false, error: String(e.payload.error) }
    })
    consumers.push(consumer)
  }
  summary.joins = joins
  for (const [c, consumer] of consumers.entries()) {
    await step(`consumer${c}.connect`, () => consumer.connect())
    await step(`consumer${c}.subscribe`, () => consumer.subscribe({ topics: [recordsTopic], fromBeginning: true }))
    await step(`consumer${c}.run`, () =>
      consumer.run({
        eachMessage: async ({ partition, message }) => {
          seen.add(`${partition}/${message.offset}`)
          summary.received.push({
            consumer: c,
            partition,
            offset: Number(message.offset),
            key: b64(message.key),
            value: b64(message.value),
            headers: headerPairs(message.headers),
            timestamp: message.timestamp,
          })
        },
      })
    )
  }
  // Done once everything is read and the three latest assignments cover
  // every partition once.
  const settled = () => {
    const owned = Object.values(summary.assignments).flatMap(a => a.partitions)
    return (
      seen.size >= summary.sent.length &&
      Object.keys(summary.assignments).length === CONSUMERS &&
      owned.length === PARTITIONS &&
      new Set(owned).size === PARTITIONS
    )
  }
  await step('group.settled', async () => {
    await until(settled, STEP_MS - 1000, 'group consumed everything with a stable assignment')
    // Leaving rebalances the group again; keep the settled generation.
    summary.settled = structuredClone(summary.assignments)
  })
  await step('admin.describeGroups', async () => {
    const { groups } = await admin.describeGroups([groupId])
    return groups.map(g => ({ groupId: g.groupId, state: g.state, protocol: g.protocol, members: g.members.length }))
  })
  for (const [c, consumer] of consumers.entries()) {
    await step(`consumer${c}.disconnect`, () => consumer.disconnect())
  }
  await step('admin.fetchOffsets', async () => {
    const res = await admin.fetchOffsets({ groupId, topics: [recordsTopic] })
    return res.flatMap(t => t.partitions.map(p => ({ partition: p.partition, offset: p.offset })))
  })
  await step('admin.disconnect', () => admin.disconnect())
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
