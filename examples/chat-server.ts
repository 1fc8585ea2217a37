/**
 * Chat rooms on topics: a member joins room NAME by connecting to `/room/NAME` (letters, digits,
 * `-` and `_`) with the subprotocol `chat`. Every text message a member sends is published to
 * the room, and every member of the room, the sender included, receives every message published
 * to it, in order, from this process and, with `--redis`, from every process sharing that Redis.
 *
 * Nobody waits for anybody: a publish is queued for each member and sent at that member's pace.
 * A member too far behind (past the topics' `maxQueuedBytes`, 1 MiB by default) is closed with
 * 1008 "subscriber too slow": it got every message up to then, and knows it missed the rest.
 * A binary message is refused with 1003 (unsupported data).
 *
 *   node --import tsx examples/chat-server.ts --port 8080 [--redis redis://127.0.0.1:6379]
 */
import { parseArgs } from 'node:util'
import { CloseCode, isText, WebSocketServer, type Handler, type Topics, type WebSocketServerOptions } from '../src/index.js'
import { RedisAdapter } from '../src/topics/redis.js'
import { cannotListen, isMain } from './run.js'

/** `/room/NAME`: the room's name is the topic. */
const ROOM = /^\/room\/([A-Za-z0-9_-]+)$/

/** The topic of the room at `path`, or undefined if `path` names no room. */
export function roomOf (path: string): string | undefined {
  const match = ROOM.exec(path)
  return match === null ? undefined : `room/${match[1]}`
}

/** The handler: one call per member, for as long as it stays. */
export function chat (topics: Topics): Handler {
  return async (conn) => {
    const room = roomOf(conn.path)
    if (room === undefined) {
      conn.close(CloseCode.PolicyViolation, 'no such room: connect to /room/NAME')
      return
    }
    // The subscription ends by itself when the member leaves.
    const sending = conn.sink(topics.subscribe(room, conn))
    for await (const message of conn.source) {
      if (!isText(message)) {
        conn.close(CloseCode.UnsupportedData, 'text messages only')
        break
      }
      topics.publish(room, message)
    }
    await sending
  }
}

/** A chat server: rooms on `chat`, across processes when `topics.adapter` is given. */
export function createServer (options: WebSocketServerOptions = {}): WebSocketServer {
  const server = new WebSocketServer(options)
  return server.register('chat', chat(server.topics))
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      redis: { type: 'string' }
    }
  })
  const adapter = values.redis === undefined ? undefined : await RedisAdapter.connect({ url: values.redis })
  const server = createServer({ topics: { adapter } })
  const address = await server.listen({ port: Number(values.port), host: values.host }).catch(cannotListen(values.host, values.port))
  console.log(`ws://${address.address}:${address.port}/`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // Every member gets 1001 (going away), then the link to Redis goes.
    process.once(signal, () => { void server.close().then(() => adapter?.close()).then(() => process.exit(0)) })
  }
}
