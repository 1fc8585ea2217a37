/**
 * examples/metrics.ts: GET /metrics gives the Prometheus text format, with the counters fed by
 * the diagnostics channels and the gauges from server.stats().
 */

import test from 'ava'
import { connect, UpgradeError } from '../../src/index.js'
import { startMetricsDemo } from '../../examples/metrics.js'
import { runExample } from './helpers.js'

/** The samples of an exposition text, by `name{labels}`; every line must be a comment or a sample. */
function samples (text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue
    const m = /^([a-z_]+(?:\{[a-z_]+="[^"\\\n]*"(?:,[a-z_]+="[^"\\\n]*")*\})?) (\d+)$/.exec(line)
    if (m === null) throw new Error(`not a sample: ${line}`)
    out.set(m[1], Number(m[2]))
  }
  return out
}

async function scrape (url: string): Promise<{ type: string | null, text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) })
  return { type: res.headers.get('content-type'), text: await res.text() }
}

test.serial('counters from the channels, gauges from stats(), in the text format', async (t) => {
  const demo = await startMetricsDemo(0)
  t.teardown(() => demo.close())

  const conn = await connect(demo.wsUrl, { protocols: ['echo'] })
  await conn.send('hi')
  await conn.source.next()
  const open = samples((await scrape(demo.metricsUrl)).text)
  t.is(open.get('wspipe_connections'), 1)
  t.is(open.get('wspipe_connections_opened_total{protocol="echo"}'), 1)

  conn.close(1000)
  await conn.closed
  // No subprotocol, and no handler for '': refused with 400.
  const refusal = await t.throwsAsync(connect(demo.wsUrl), { instanceOf: UpgradeError })
  t.is(refusal?.status, 400)

  const { type, text } = await scrape(demo.metricsUrl)
  t.regex(type ?? '', /^text\/plain; version=0\.0\.4/)
  t.regex(text, /^# TYPE wspipe_connections_closed_total counter$/m)
  t.regex(text, /^# TYPE wspipe_held_bytes gauge$/m)
  const after = samples(text)
  t.is(after.get('wspipe_connections'), 0)
  t.is(after.get('wspipe_memory_budget_bytes'), 256 * 1024 * 1024)
  t.is(after.get('wspipe_connections_opened_total{protocol="echo"}'), 1)
  t.is(after.get('wspipe_connections_closed_total{code="1000",clean="true"}'), 1)
  t.is(after.get('wspipe_handshakes_refused_total{status="400"}'), 1)
  // Client connections of the same process are not counted as the server's.
  t.is([...after.keys()].filter((k) => k.startsWith('wspipe_connections_closed_total')).length, 1)
})

test.serial('runs as a script: prints its URLs and serves /metrics', async (t) => {
  t.timeout(60_000)
  const { url, stop } = await runExample('metrics')
  try {
    const metricsUrl = url.replace(/^ws:/, 'http:') + 'metrics'
    const { text } = await scrape(metricsUrl)
    t.is(samples(text).get('wspipe_connections'), 0)
  } finally {
    t.is(await stop(), 0)
  }
})
