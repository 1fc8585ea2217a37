/**
 * The chat server of examples/chat-server.ts on every core: one worker process per core (or
 * `--workers N`), all on one port. Topics live in each worker, so rooms span the workers only
 * through Redis: pass `--redis` for more than one worker. The subprotocol `pid` answers with the
 * serving worker's process id, to see the connections spread.
 *
 * SIGHUP restarts the workers one at a time (each old worker's `server.close()` sends 1001 to
 * its connections and drains; a new one serves before the old one stops) and prints
 * `restarted`; SIGTERM closes them all, then the primary exits 0.
 *
 *   node --import tsx examples/cluster.ts --port 8080 --workers 2 --redis redis://127.0.0.1:6379
 */
import { parseArgs } from 'node:util'
import { serveCluster } from '../src/cluster.js'
import { RedisAdapter } from '../src/topics/redis.js'
import { createServer } from './chat-server.js'
import { isMain } from './run.js'

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      workers: { type: 'string' },
      redis: { type: 'string' }
    }
  })
  const primary = await serveCluster({
    workers: values.workers === undefined ? undefined : Number(values.workers),
    signals: false,
    start: async () => {
      const adapter = values.redis === undefined ? undefined : await RedisAdapter.connect({ url: values.redis })
      const server = createServer({ topics: { adapter } })
      server.register('pid', ({ sink }) => sink([String(process.pid)]))
      await server.listen({ port: Number(values.port), host: values.host })
      return {
        address: () => server.address(),
        close: async () => {
          await server.close()
          await adapter?.close()
        }
      }
    }
  })
  if (primary !== undefined) {
    console.log(`ws://${primary.address?.address ?? values.host}:${primary.address?.port ?? values.port}/`)
    process.on('SIGHUP', () => { void primary.restart().then(() => console.log('restarted')) })
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => { void primary.close().then(() => process.exit(0)) })
  }
}
