/**
 * Prometheus metrics for a wspipe server, with no dependency: counters fed by wspipe's
 * diagnostics channels (docs/diagnostics.md), gauges read from `server.stats()` at each scrape,
 * served in the text exposition format on GET /metrics of the HTTP server the WebSocket server
 * is attached to. The WebSocket endpoint is an echo for clients offering `echo`; others are
 * refused (400), which shows in `wspipe_handshakes_refused_total`.
 *
 *   npx tsx examples/metrics.ts --port 8080
 *   curl http://127.0.0.1:8080/metrics
 *
 * The counters count every server connection of the process (the channels are process-wide);
 * the gauges are this server's.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import {
  DIAGNOSTICS_CHANNELS, WebSocketServer, type ConnectionCloseMessage, type ConnectionOpenMessage, type HandshakeRefusedMessage,
  type HeartbeatDropMessage, type MemoryBudgetExhaustedMessage, type SlowSubscriberMessage, type ZlibBudgetWaitMessage
} from '../src/index.js'
import { cannotListen, isMain } from './run.js'

/** A counter with labels: one value per combination of label values. */
class Counter {
  private readonly values = new Map<string, number>()

  constructor (readonly name: string, readonly help: string) {}

  inc (labels: Record<string, string | number | boolean> = {}): void {
    const key = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(',')
    this.values.set(key, (this.values.get(key) ?? 0) + 1)
  }

  render (): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`
    for (const [key, value] of this.values) out += `${this.name}${key === '' ? '' : `{${key}}`} ${value}\n`
    return out
  }
}

/** The text format's escapes for a label value: backslash, double quote, line feed. */
function escapeLabel (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function gauge (name: string, help: string, value: number): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`
}

/** Metrics of `server`: `render()` gives the exposition text, `close()` unsubscribes. */
export interface Metrics {
  render: () => string
  close: () => void
}

/** Subscribe to wspipe's channels and count what an operator watches; gauges come from `server.stats()`. */
export function collectMetrics (server: WebSocketServer): Metrics {
  const opened = new Counter('wspipe_connections_opened_total', 'WebSocket connections opened by servers of this process, by subprotocol.')
  const closed = new Counter('wspipe_connections_closed_total', 'WebSocket connections of servers of this process that ended, by close code and whether the closing handshake completed.')
  const refused = new Counter('wspipe_handshakes_refused_total', 'Upgrade requests answered with an HTTP error, by status.')
  const budget = new Counter('wspipe_memory_budget_exhausted_total', 'Connections failed with 1013 because the memory budget was spent, by what needed the memory.')
  const slow = new Counter('wspipe_slow_subscriber_total', 'Topic subscribers that fell behind: closed (1008) or a message dropped, by policy.')
  const heartbeat = new Counter('wspipe_heartbeat_drops_total', 'Connections dropped by the heartbeat, by reason.')
  const zlib = new Counter('wspipe_zlib_budget_waits_total', 'Times a permessage-deflate connection stopped reading because a zlib budget was spent, by budget.')

  // Client connections of this process (connect()) are not the server's to count.
  const listeners: Array<[string, (message: unknown) => void]> = [
    [DIAGNOSTICS_CHANNELS.connectionOpen, (m) => {
      const { role, protocol } = m as ConnectionOpenMessage
      if (role === 'server') opened.inc({ protocol })
    }],
    [DIAGNOSTICS_CHANNELS.connectionClose, (m) => {
      const { role, code, wasClean } = m as ConnectionCloseMessage
      if (role === 'server') closed.inc({ code, clean: wasClean })
    }],
    [DIAGNOSTICS_CHANNELS.handshakeRefused, (m) => { refused.inc({ status: (m as HandshakeRefusedMessage).status }) }],
    [DIAGNOSTICS_CHANNELS.memoryBudgetExhausted, (m) => { budget.inc({ holder: (m as MemoryBudgetExhaustedMessage).holder }) }],
    [DIAGNOSTICS_CHANNELS.slowSubscriber, (m) => { slow.inc({ policy: (m as SlowSubscriberMessage).policy }) }],
    [DIAGNOSTICS_CHANNELS.heartbeatDrop, (m) => {
      const { role, reason } = m as HeartbeatDropMessage
      if (role === 'server') heartbeat.inc({ reason })
    }],
    [DIAGNOSTICS_CHANNELS.zlibBudgetWait, (m) => {
      const { role, budget } = m as ZlibBudgetWaitMessage
      if (role === 'server') zlib.inc({ budget })
    }]
  ]
  for (const [name, listener] of listeners) subscribe(name, listener)

  return {
    render: () => {
      const stats = server.stats()
      return [
        gauge('wspipe_connections', 'Open WebSocket connections of this server.', stats.connections),
        gauge('wspipe_held_bytes', 'Bytes this server holds for its connections, as its memory budget counts them.', stats.heldBytes),
        gauge('wspipe_memory_budget_bytes', 'The memory budget of this server.', stats.memoryBudget),
        ...[opened, closed, refused, budget, slow, heartbeat, zlib].map((c) => c.render())
      ].join('')
    },
    close: () => {
      for (const [name, listener] of listeners) unsubscribe(name, listener)
    }
  }
}

/** The example running: its WebSocket URL, its metrics URL, and a way to stop it. */
export interface MetricsDemo {
  readonly wsUrl: string
  readonly metricsUrl: string
  readonly server: WebSocketServer
  close: () => Promise<void>
}

/** An echo server on `echo` and GET /metrics, on one port. */
export async function startMetricsDemo (port = 8080, host = '127.0.0.1'): Promise<MetricsDemo> {
  const server = new WebSocketServer().register('echo', ({ source, sink }) => sink(source))
  const metrics = collectMetrics(server)
  const http = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      const body = metrics.render()
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) })
      res.end(body)
      return
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' })
    res.end('not found: try /metrics\n')
  })
  server.attach(http)
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(port, host, () => { http.off('error', reject); resolve() })
  })
  const address = http.address() as AddressInfo
  const origin = `${address.address}:${address.port}`
  return {
    wsUrl: `ws://${origin}/`,
    metricsUrl: `http://${origin}/metrics`,
    server,
    close: async () => {
      await server.close()
      metrics.close()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    }
  }
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ strict: false, options: { port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' } } })
  const demo = await startMetricsDemo(Number(values.port), String(values.host)).catch(cannotListen(String(values.host), String(values.port)))
  console.log(demo.wsUrl)
  console.log(`metrics: ${demo.metricsUrl}`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { void demo.close().then(() => process.exit(0)) })
  }
}
